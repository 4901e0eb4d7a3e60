"""Label Studio's deployment-only settings: the base URL of an existing Label Studio server the pipeline uses,
or, without it, the settings of the server this stack deploys (ECS Fargate, PostgreSQL, CloudFront)."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import StrictBool, StrictInt, StrictStr, field_validator, model_validator

from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from labeling_pipeline.settings import between
from stacks.deployment_settings import EMAIL_PATTERN, LabelingConfig

# Plain http only for a server on this machine (the local tests and the demo): elsewhere the API token and
# the webhook secret would cross the network in clear.
LOCAL_HOSTS = ("localhost", "127.0.0.1")
URL_EXAMPLE = "https://labels.example.com"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be the pipeline's Label Studio base URL (None when it can)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as error:
        return f"{url!r} is not a URL ({error})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{url!r} must be an https:// URL, e.g. {URL_EXAMPLE}"
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        return (
            f"{url!r} must use https:// (plain http:// only for {' or '.join(LOCAL_HOSTS)}): the API token and "
            "the webhook secret travel with every request"
        )
    if parts.username is not None or parts.password is not None:
        return f"{url!r} must not carry a user name or password (the API token is kept in Secrets Manager)"
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        return f"{url!r} must be the server's base URL, with no path, query or fragment, e.g. {URL_EXAMPLE}"
    return None


# A Secrets Manager secret's complete ARN (its name ends in a hyphen and 6 random characters).
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$")


# A custom domain's certificate: CloudFront takes only ACM certificates in us-east-1
# (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cnames-and-https-requirements.html).
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$")
# A DNS name of at least two labels, each 1-63 letters, digits and inner hyphens (lower case, as CloudFront keeps it).
DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# An RDS DB instance class without its "db." prefix, e.g. t4g.micro, m7g.large
# (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.DBInstanceClass.html).
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
# RDS keeps automated backups 1 to 35 days (0 would turn them off, which this stack never does):
# https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_WorkingWithAutomatedBackups.html
MAX_BACKUP_DAYS = 35
MAX_TASKS = 10
DEFAULT_ADMIN_EMAIL = "admin@example.com"
# The settings of the server this stack deploys when labelStudioUrl is not given (refused beside it).
SERVER_FIELDS = (
    "label_studio_admin_email",
    "label_studio_domain",
    "label_studio_certificate_arn",
    "label_studio_min_tasks",
    "label_studio_max_tasks",
    "label_studio_database_instance_type",
    "label_studio_database_backup_days",
    "label_studio_database_multi_az",
)


class LabelStudioDeploymentSettings(LabelStudioSettings):
    # An existing Label Studio server; without it the stack deploys one (and the URL is that site's).
    label_studio_url: StrictStr | None = None
    # An existing server's API token, in a secret the operator made before the first deploy (the deploy's
    # custom resource needs a token that works). Without it the stack generates the token (a server that the
    # deployment itself runs gets it).
    label_studio_api_token_secret_arn: StrictStr | None = None
    # The deployed server's first user (an administrator); its password is generated in Secrets Manager.
    label_studio_admin_email: StrictStr = DEFAULT_ADMIN_EMAIL
    # The deployed server under a domain of your own (a CNAME to the distribution) with its ACM certificate
    # in us-east-1; without them the site is https://<id>.cloudfront.net.
    label_studio_domain: StrictStr | None = None
    label_studio_certificate_arn: StrictStr | None = None
    # The Fargate service's bounds: it scales between them on CPU.
    label_studio_min_tasks: Annotated[StrictInt, between(1, MAX_TASKS)] = 1
    label_studio_max_tasks: Annotated[StrictInt, between(1, MAX_TASKS)] = 2
    # The PostgreSQL instance: class, automated backup retention, a standby in a second zone.
    label_studio_database_instance_type: StrictStr = "t4g.micro"
    label_studio_database_backup_days: Annotated[StrictInt, between(1, MAX_BACKUP_DAYS)] = 7
    label_studio_database_multi_az: StrictBool = False

    @field_validator("label_studio_api_token_secret_arn")
    @classmethod
    def _secret_arn(cls, arn: str | None) -> str | None:
        if arn is not None and not SECRET_ARN.match(arn):
            raise ValueError(
                f"{arn!r} must be a Secrets Manager secret's complete ARN, e.g. "
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:label-studio-token-AbCdEf"
            )
        return arn

    @field_validator("label_studio_url")
    @classmethod
    def _base_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        problem = url_problem(url)
        if problem:
            raise ValueError(problem)
        return url.rstrip("/")

    @field_validator("label_studio_admin_email")
    @classmethod
    def _admin_email(cls, email: str) -> str:
        if not EMAIL_PATTERN.match(email):
            raise ValueError(f"{email!r} is not an email address")
        return email

    @field_validator("label_studio_domain")
    @classmethod
    def _domain(cls, domain: str | None) -> str | None:
        if domain is not None and not DOMAIN.match(domain):
            raise ValueError(
                f"{domain!r} must be a lower-case DNS name without scheme or path, e.g. labels.example.com"
            )
        return domain

    @field_validator("label_studio_certificate_arn")
    @classmethod
    def _certificate_arn(cls, arn: str | None) -> str | None:
        if arn is not None and not CERTIFICATE_ARN.match(arn):
            hint = " (CloudFront takes certificates from us-east-1 only)" if ":acm:" in arn else ""
            raise ValueError(
                f"{arn!r} must be an ACM certificate's ARN in us-east-1, e.g. "
                f"arn:aws:acm:us-east-1:123456789012:certificate/<id>{hint}"
            )
        return arn

    @field_validator("label_studio_database_instance_type")
    @classmethod
    def _instance_type(cls, instance_type: str) -> str:
        if not INSTANCE_TYPE.match(instance_type):
            raise ValueError(f"{instance_type!r} must be an RDS instance class without 'db.', e.g. t4g.micro")
        return instance_type

    @model_validator(mode="after")
    def _server_rules(self) -> LabelStudioDeploymentSettings:
        if self.label_studio_url is not None:
            defaults = type(self).model_fields
            for name in SERVER_FIELDS:
                if getattr(self, name) != defaults[name].default:
                    raise ValueError(
                        f"{defaults[name].alias or name}: a setting of the Label Studio server this stack deploys, "
                        "but labelStudioUrl names an existing server; remove one of them"
                    )
            return self
        if (self.label_studio_domain is None) != (self.label_studio_certificate_arn is None):
            raise ValueError(
                "labelStudioDomain: give labelStudioDomain and labelStudioCertificateArn together (the certificate, "
                "in us-east-1, must cover the domain), or neither"
            )
        if self.label_studio_min_tasks > self.label_studio_max_tasks:
            raise ValueError(
                f"labelStudioMinTasks: must not exceed labelStudioMaxTasks ({self.label_studio_min_tasks} > "
                f"{self.label_studio_max_tasks})"
            )
        return self

    @property
    def deploys_server(self) -> bool:
        """True when the stack runs Label Studio itself (no labelStudioUrl given)."""
        return self.label_studio_url is None

    @property
    def url(self) -> str:
        """The existing server's base URL (only when labelStudioUrl is given)."""
        assert self.label_studio_url is not None, "only for an existing server; see deploys_server"
        return self.label_studio_url


class LabelStudioConfig(LabelStudioDeploymentSettings, LabelingConfig):
    """Every setting of a Label Studio deployment: what its constructs are typed with."""

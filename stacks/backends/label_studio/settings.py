"""Label Studio's deployment-only settings: the base URL of the Label Studio server the pipeline uses."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import StrictStr, field_validator, model_validator

from labeling_pipeline.backends.label_studio import NAME
from labeling_pipeline.backends.label_studio.settings import LabelStudioSettings
from stacks.deployment_settings import LabelingConfig

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


class LabelStudioDeploymentSettings(LabelStudioSettings):
    label_studio_url: StrictStr | None = None
    # An existing server's API token, in a secret the operator made before the first deploy (the deploy's
    # custom resource needs a token that works). Without it the stack generates the token (a server that the
    # deployment itself runs gets it).
    label_studio_api_token_secret_arn: StrictStr | None = None

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

    @model_validator(mode="after")
    def _url_is_given(self) -> LabelStudioDeploymentSettings:
        if self.label_studio_url is None:
            raise ValueError(
                f"labelStudioUrl: required with labeling.backend={NAME}: the base URL of the Label Studio server "
                f"the pipeline uses, e.g. {URL_EXAMPLE}"
            )
        return self

    @property
    def url(self) -> str:
        assert self.label_studio_url is not None, "the validator requires it"
        return self.label_studio_url


class LabelStudioConfig(LabelStudioDeploymentSettings, LabelingConfig):
    """Every setting of a Label Studio deployment: what its constructs are typed with."""

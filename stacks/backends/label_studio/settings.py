"""Label Studio's deployment-only settings: the base URL of the Label Studio server the pipeline uses."""

from __future__ import annotations

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


class LabelStudioDeploymentSettings(LabelStudioSettings):
    label_studio_url: StrictStr | None = None

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

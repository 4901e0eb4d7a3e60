"""Ground Truth's deployment-only settings: the private workforce's members and its sign-in domain."""

from __future__ import annotations

import re

from pydantic import StrictStr, model_validator

from labeling_pipeline.backends.ground_truth.settings import GroundTruthSettings
from stacks.deployment_settings import Emails, LabelingConfig, emails_problem

# Cognito domain prefixes: lowercase letters, digits and hyphens; no "aws", "amazon" or "cognito".
DOMAIN_PREFIX_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_DOMAIN_WORDS = ("aws", "amazon", "cognito")


class GroundTruthDeploymentSettings(GroundTruthSettings):
    worker_emails: Emails = ()
    cognito_domain_prefix: StrictStr | None = None

    @model_validator(mode="after")
    def _workforce_rules(self) -> GroundTruthDeploymentSettings:
        problem = emails_problem(self.worker_emails)
        if problem:
            raise ValueError(f"workerEmails: {problem}")
        prefix = self.cognito_domain_prefix
        if prefix is not None:
            if not DOMAIN_PREFIX_PATTERN.match(prefix):
                raise ValueError(
                    f"cognitoDomainPrefix: {prefix!r} must be 1-63 lowercase letters, digits or hyphens, "
                    "not starting or ending with a hyphen"
                )
            if any(word in prefix for word in RESERVED_DOMAIN_WORDS):
                raise ValueError(f"cognitoDomainPrefix: {prefix!r} must not contain 'aws', 'amazon' or 'cognito'")
        return self


class GroundTruthConfig(GroundTruthDeploymentSettings, LabelingConfig):
    """Every setting of a Ground Truth deployment: what its constructs are typed with."""

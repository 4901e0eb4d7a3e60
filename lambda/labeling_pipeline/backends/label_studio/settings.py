"""Label Studio's own run-time settings and its limits on the shared ones.

Limits from Label Studio 1.23.2's source (label_studio/projects/models.py): a project title is 3 to 50
characters. A presigned URL lives at most 7 days (S3's SigV4 limit), and Label Studio's storage form takes
the lifetime in minutes (``presign_ttl``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StrictInt

from labeling_pipeline.settings import OneLine, SettingsModel, between, length

MIN_PROJECT_TITLE = 3
MAX_PROJECT_TITLE = 50
MAX_PRESIGN_MINUTES = 7 * 24 * 60


class LabelStudioSettings(SettingsModel):
    # The project the pipeline creates and keeps in step: one per deployment (two deployments that share a
    # Label Studio server need two titles).
    project_title: Annotated[OneLine, length(MIN_PROJECT_TITLE, MAX_PROJECT_TITLE)] = "Bounding boxes"
    # How long an image link handed to a worker's browser stays valid.
    presign_minutes: Annotated[StrictInt, between(1, MAX_PRESIGN_MINUTES)] = 60

"""Django set up with this app's settings, as Label Studio's own commands set it up (label_studio/server.py puts
its package directory on sys.path, so that its apps import as ``core``, ``tasks``, ...)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SETTINGS_MODULE = "labeling_gate.settings"


def label_studio_dir() -> Path:
    import label_studio

    return Path(label_studio.__file__).resolve().parent


def prepare_environment() -> None:
    directory = str(label_studio_dir())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE


def setup_django() -> None:
    prepare_environment()
    import django

    django.setup()

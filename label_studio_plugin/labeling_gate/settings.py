"""Label Studio's own settings (core.settings.label_studio) plus this app: the access middleware, the URLs of
the worker accounts and the password page, and the password links' lifetime.

Environment (beside Label Studio's own):
- ``CSRF_TRUSTED_ORIGINS``: Label Studio's own, comma-separated; the stack names both the custom domain and the
  distribution's ``*.cloudfront.net`` address, so signing in works at either.
- ``LABELING_PASSWORD_LINK_HOURS``: how long a link to choose a password stays valid (default 72).
"""

from __future__ import annotations

import os

# Label Studio's settings module reads django.conf.settings while it is still being imported (Sentry's set-up,
# the version check). Imported from here, those reads would find this module half-built; with the variable
# naming Label Studio's module for that time, they see Label Studio's module half-built, as in its own start.
_OUR_MODULE = os.environ.get("DJANGO_SETTINGS_MODULE", "")
os.environ["DJANGO_SETTINGS_MODULE"] = "core.settings.label_studio"
try:
    from core.settings.label_studio import *  # noqa: F403
    from core.settings.label_studio import DATABASES, INSTALLED_APPS, MIDDLEWARE
finally:
    os.environ["DJANGO_SETTINGS_MODULE"] = _OUR_MODULE

INSTALLED_APPS = [*INSTALLED_APPS, "labeling_gate"]
# Before Django's CSRF check, so that a refused request is refused by the table whatever its CSRF token. The
# caller is known by then all the same: every middleware's request phase (the session's user, Label Studio's
# JWT user) runs before any view phase.
_CSRF = "django.middleware.csrf.CsrfViewMiddleware"
MIDDLEWARE = [
    *MIDDLEWARE[: MIDDLEWARE.index(_CSRF)],
    "labeling_gate.middleware.AccessMiddleware",
    *MIDDLEWARE[MIDDLEWARE.index(_CSRF) :],
]
ROOT_URLCONF = "labeling_gate.urls"

# SQLite (a local server, the tests; the stack runs PostgreSQL): upstream leaves Django's 5 s busy timeout and
# deferred transactions, so two uwsgi workers writing at once answer "database is locked" (HTTP 500) under load.
# Django's own advice for that error: a longer timeout and transactions that take the write lock when they begin.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
    }

# Django's password reset tokens (django.contrib.auth.tokens) expire after this and die once the password is
# set or the worker signs in.
PASSWORD_RESET_TIMEOUT = int(os.environ.get("LABELING_PASSWORD_LINK_HOURS", "72")) * 3600

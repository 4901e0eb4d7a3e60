"""Label Studio's own URLs (core.urls) after this app's few.

``api/projects/<pk>/next/`` is served by views.ReviewAwareNextTaskAPI, before Label Studio's own view: under
``re_path("^", include(...))`` as core.urls nests it, so that Django names the route exactly as it names Label
Studio's (``^api/projects/<int:pk>/next/``) and the rule table's entry applies unchanged (the inventory lists
the route once, with this view).
"""

from __future__ import annotations

from core.urls import urlpatterns as label_studio_urlpatterns
from django.urls import include, path, re_path

from labeling_gate import views

urlpatterns = [
    path("labeling/api/workers/", views.Workers.as_view(), name="labeling-workers"),
    path("labeling/api/workers/password-link/", views.PasswordLink.as_view(), name="labeling-worker-password-link"),
    path("labeling/api/workers/remove/", views.RemoveWorker.as_view(), name="labeling-worker-remove"),
    path("labeling/password/<uidb64>/<token>/", views.ChoosePassword.as_view(), name="labeling-choose-password"),
    path("labeling/password/done/", views.PasswordChosen.as_view(), name="labeling-password-chosen"),
    re_path(
        r"^",
        include([path("api/projects/<int:pk>/next/", views.ReviewAwareNextTaskAPI.as_view(), name="labeling-next")]),
    ),
    *label_studio_urlpatterns,
]

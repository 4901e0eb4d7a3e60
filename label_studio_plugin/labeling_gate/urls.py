"""Label Studio's own URLs (core.urls) after this app's few."""

from __future__ import annotations

from core.urls import urlpatterns as label_studio_urlpatterns
from django.urls import path

from labeling_gate import views

urlpatterns = [
    path("labeling/api/workers/", views.Workers.as_view(), name="labeling-workers"),
    path("labeling/api/workers/password-link/", views.PasswordLink.as_view(), name="labeling-worker-password-link"),
    path("labeling/api/workers/remove/", views.RemoveWorker.as_view(), name="labeling-worker-remove"),
    path("labeling/password/<uidb64>/<token>/", views.ChoosePassword.as_view(), name="labeling-choose-password"),
    path("labeling/password/done/", views.PasswordChosen.as_view(), name="labeling-password-chosen"),
    *label_studio_urlpatterns,
]

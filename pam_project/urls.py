"""Top-level URLs: the chat page and accounts (pam_hybrid), and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("pam_hybrid.urls")),
]

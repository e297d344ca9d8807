"""Top-level URLs: the chat page and accounts (pam_hybrid), and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from pam_hybrid.admin.breakers import breaker_status_view
from pam_hybrid.admin.dashboard import usage_dashboard

urlpatterns = [
    path("admin/pam/usage/", admin.site.admin_view(usage_dashboard), name="pam_usage_dashboard"),
    path("admin/pam/breakers/", admin.site.admin_view(breaker_status_view), name="pam_breakers"),
    path("admin/", admin.site.urls),
    path("", include("pam_hybrid.chat.urls")),
]

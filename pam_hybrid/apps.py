"""Django app configuration for pam_hybrid."""

from __future__ import annotations

from django.apps import AppConfig


class PamHybridConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pam_hybrid"
    verbose_name = "PAM Hybrid"

    def ready(self) -> None:
        from pam_hybrid.chat import sessions  # noqa: F401  (connects the receivers)

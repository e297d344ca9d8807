"""The app's URLs. The names are a contract with templates, settings (LOGIN_URL, LOGIN_REDIRECT_URL) and tests."""

from __future__ import annotations

from django.contrib.auth.views import LogoutView
from django.urls import path

from pam_hybrid.chat import preview, views
from pam_hybrid.observability import view as metrics_view

urlpatterns = [
    path("", views.chat, name="chat"),
    path("c/<uuid:conversation_id>/", views.chat, name="chat_conversation"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    path("accounts/login/", views.PamLoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("api/conversations/", views.conversations, name="conversations"),
    path("api/conversations/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path(
        "api/conversations/<uuid:conversation_id>/messages/",
        views.conversation_messages,
        name="conversation_messages",
    ),
    path("api/conversations/<uuid:conversation_id>/branch", views.conversation_branch, name="conversation_branch"),
    path("api/conversations/<uuid:conversation_id>/export", views.conversation_export, name="conversation_export"),
    path("api/route-preview", preview.route_preview, name="route_preview"),
]

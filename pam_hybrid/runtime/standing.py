"""Whether a socket's user still stands signed in: the session's auth hash still matches the user's password and
the account is still active, as Django checks on every HTTP request. A socket asks before each answer it starts or
resumes, and whenever its user's account changes (pam_hybrid.chat.sessions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.auth import get_user
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from pam_hybrid.domain.chunks import StreamChunk

SIGNED_OUT_TEXT = "Your password was changed or your account was deactivated: sign in again to go on."


def session_group(session_key: str) -> str:
    """The channel-layer group of the sockets opened with one session (a logout ends them)."""
    return f"session.{session_key}"


def user_group(user_id: object) -> str:
    """The channel-layer group of one user's sockets, in every process (a change of password or `is_active`
    makes each of them check its standing)."""
    return f"user.{user_id}"


async def still_signed_in(scope: Mapping[str, Any]) -> bool:
    """Whether the scope's session still authenticates the user the socket opened as (one database read)."""
    opened_as = scope.get("user")
    if opened_as is None or not opened_as.is_authenticated:
        return False
    if "session" in scope:  # always, behind the project's ASGI stack
        user = await get_user(scope)  # Channels' check of the session's auth hash; an inactive user is no user
    else:  # a scope built without a session (tests driving the consumer alone): the account only
        user = await get_user_model()._default_manager.filter(pk=opened_as.pk).afirst() or AnonymousUser()
    return bool(user.is_authenticated and user.is_active and user.pk == opened_as.pk)


def signed_out_chunk() -> StreamChunk:
    return StreamChunk("error", SIGNED_OUT_TEXT, {"code": "signed_out"})

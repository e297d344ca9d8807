"""Signal receivers: a logout ends the sockets of that session, in whichever server process they are open."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest


def session_group(session_key: str) -> str:
    """The channel-layer group of the sockets opened with one session."""
    return f"session.{session_key}"


@receiver(user_logged_out)
def end_session_sockets(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    layer = get_channel_layer()
    if session_key and layer is not None:
        async_to_sync(layer.group_send)(session_group(session_key), {"type": "session.ended"})

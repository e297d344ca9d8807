"""Signal receivers: a logout ends the sockets of that session, and a change of a user's password or `is_active` (or
the account's deletion) makes each of that user's sockets check whether it still stands, in whichever server
process they are open."""

from __future__ import annotations

from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from pam_hybrid.runtime.standing import session_group, user_group

STANDING_FIELDS = frozenset({"password", "is_active"})


@receiver(user_logged_out)
def end_session_sockets(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    layer = get_channel_layer()
    if session_key and layer is not None:
        async_to_sync(layer.group_send)(session_group(session_key), {"type": "session.ended"})


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def recheck_after_save(sender: Any, instance: Any, created: bool, update_fields: frozenset[str] | None,
                       using: str, **kwargs: Any) -> None:
    """A save that may have changed the password or `is_active` (not a login's `last_login`): once it is committed,
    the user's sockets check their standing."""
    if not created and (update_fields is None or STANDING_FIELDS & update_fields):
        transaction.on_commit(partial(_recheck, instance.pk), using=using)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL)
def recheck_after_delete(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    transaction.on_commit(partial(_recheck, instance.pk), using=using)


def _recheck(user_id: object) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "user.changed"})

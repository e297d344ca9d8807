"""Guest accounts (PAM_ANONYMOUS_CHAT): finding the ones nobody has used for a while, and deleting them with
everything they own (conversations, messages, usage records)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db import transaction
from django.db.models import Max, Q, QuerySet

GUEST_PREFIX = "guest-"
"""Guest usernames start with it (pam_hybrid.chat.views creates them); they also have no usable password."""


def guest_list_stale(*, before: datetime) -> QuerySet[Any]:
    """Guests created, last signed in and last active in a conversation before `before`; a real account that
    happens to be named guest-… has a usable password and is never one of them."""
    return (
        get_user_model().objects
        .filter(username__startswith=GUEST_PREFIX, password__startswith=UNUSABLE_PASSWORD_PREFIX,
                is_staff=False, is_superuser=False, date_joined__lt=before)
        .filter(Q(last_login__isnull=True) | Q(last_login__lt=before))
        .annotate(last_active=Max("conversations__updated_at"))
        .filter(Q(last_active__isnull=True) | Q(last_active__lt=before))
        .order_by("date_joined")
    )


def guest_delete_stale(*, before: datetime) -> int:
    """Delete the stale guests and all they own, in one transaction; how many guests went."""
    with transaction.atomic():
        ids = list(guest_list_stale(before=before).values_list("pk", flat=True))
        get_user_model().objects.filter(pk__in=ids).delete()
    return len(ids)

"""`pam_guests_cleanup`: stale guests go with all they own; recent guests, real accounts and a dry run stay."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from pam_hybrid.models import Conversation, Message, UsageRecord
from tests.support.factories import conversation_create, message_create, usage_record_create, user_create

pytestmark = pytest.mark.django_db


def guest_create(*, name: str, days_ago: int, active_days_ago: int | None = None) -> Any:
    """A guest as the chat page makes one, created (and signed in) `days_ago`; a conversation last active then."""
    at = timezone.now() - timedelta(days=days_ago)
    guest = get_user_model().objects.create_user(username=f"guest-{name}")
    guest.set_unusable_password()
    guest.date_joined = guest.last_login = at
    guest.save()
    if active_days_ago is not None:
        conversation = conversation_create(owner=guest, created_at=timezone.now() - timedelta(days=active_days_ago))
        message_create(conversation=conversation, content="hello")
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=timezone.now() - timedelta(days=active_days_ago))
        usage_record_create(user=guest, conversation=conversation)
    return guest


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("pam_guests_cleanup", *args, stdout=out)
    return out.getvalue()


def usernames() -> set[str]:
    return set(get_user_model().objects.values_list("username", flat=True))


def test_stale_guests_are_deleted_with_their_data_and_the_rest_stay() -> None:
    stale = guest_create(name="stale", days_ago=40, active_days_ago=35)
    guest_create(name="idle-no-chat", days_ago=40)
    guest_create(name="new", days_ago=2)
    guest_create(name="old-but-active", days_ago=60, active_days_ago=3)
    user_create(username="guest-real-person")  # a usable password: a real account, whatever its name
    Client().force_login(get_user_model().objects.get(username="guest-real-person"))

    output = run("--older-than-days", "30")

    assert "Deleted 2 guest accounts" in output
    assert usernames() == {"guest-new", "guest-old-but-active", "guest-real-person"}
    assert not Conversation.objects.filter(owner_id=stale.pk).exists()
    assert not Message.objects.filter(conversation__owner_id=stale.pk).exists()
    assert not UsageRecord.objects.filter(user_id=stale.pk).exists()
    assert Conversation.objects.count() == 1


def test_a_dry_run_lists_and_deletes_nothing() -> None:
    guest_create(name="stale", days_ago=40, active_days_ago=35)
    guest_create(name="new", days_ago=2)

    output = run("--older-than-days", "30", "--dry-run")

    assert output.splitlines() == [
        "guest-stale", "1 guest accounts idle for more than 30 days would be deleted (dry run: nothing was).",
    ]
    assert usernames() == {"guest-stale", "guest-new"}


def test_the_chat_pages_own_guests_are_the_ones_it_cleans(client: Client, settings: Any) -> None:
    settings.PAM_ANONYMOUS_CHAT = True
    assert client.get("/").status_code == 200
    guest = get_user_model().objects.get()
    get_user_model().objects.filter(pk=guest.pk).update(
        date_joined=timezone.now() - timedelta(days=8), last_login=timezone.now() - timedelta(days=8))
    assert "Deleted 1 guest accounts" in run("--older-than-days", "7")
    assert not get_user_model().objects.exists()


def test_a_period_under_a_day_is_refused() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        run("--older-than-days", "0")

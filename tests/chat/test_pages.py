"""The pages (chat, login, sign-up, logout) and the JSON API the chat page reads, through Django's test client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from pam_hybrid.models import Conversation, Message, UsageRecord
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
IMPORT = re.compile(r'^import .* from "\./([\w.-]+)";$', re.MULTILINE)


def conversation_create(*, owner: Any, title: str, minutes: int = 0) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title)
    # updated_at is auto_now: set it afterwards so the order is certain.
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=BASE_TIME + timedelta(minutes=minutes))
    conversation.refresh_from_db()
    return conversation


class TagCollector(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies.append(data)


def parse(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    return collector


# --- the chat page ---


def test_chat_requires_login(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_chat_page_shows_username_and_logout_form(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    page = parse(response.content.decode())
    assert 'data-testid="username">alice<' in response.content.decode()
    forms = [attrs for tag, attrs in page.tags if tag == "form" and attrs.get("action") == "/accounts/logout/"]
    assert forms and forms[0].get("method") == "post"


def test_chat_page_loads_chat_js_from_static_without_inline_script(client: Client, user: Any) -> None:
    client.force_login(user)
    page = parse(client.get("/").content.decode())
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert "/static/pam_hybrid/chat.js" in [attrs.get("src") for attrs in scripts]
    assert all((attrs.get("src") or "").startswith("/static/") for attrs in scripts)
    assert "".join(page.script_bodies).strip() == ""
    handlers = [(tag, name) for tag, attrs in page.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    assert [tag for tag, attrs in page.tags if "style" in attrs] == []


def test_chat_page_configures_script_through_data_attributes(client: Client, user: Any) -> None:
    client.force_login(user)
    page = parse(client.get("/").content.decode())
    body = next(attrs for tag, attrs in page.tags if tag == "body")
    assert body["data-ws-path"] == "/ws/chat/"
    assert body["data-api-conversations"] == "/api/conversations/"
    placeholder = body["data-api-id-placeholder"]
    assert body["data-api-messages"] == f"/api/conversations/{placeholder}/messages/"
    assert body["data-login-url"] == "/accounts/login/"


def test_chat_script_imports_resolve_to_static_files() -> None:
    pending, seen = ["pam_hybrid/chat.js"], set()
    while pending:
        name = pending.pop()
        path = finders.find(name)
        assert path, f"{name} is not a static file"
        seen.add(name)
        source = Path(str(path)).read_text()
        pending += [f"pam_hybrid/{dep}" for dep in IMPORT.findall(source) if f"pam_hybrid/{dep}" not in seen]
    assert {"pam_hybrid/socket.js", "pam_hybrid/messages.js"} <= seen


# --- login, sign-up, logout ---


def test_login_with_valid_credentials_opens_chat(client: Client, user: Any) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_with_wrong_password_stays_signed_out(client: Client, user: Any) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b'data-testid="form-errors"' in response.content
    assert client.get("/").status_code == 302


def test_login_page_links_to_signup_only_when_enabled(client: Client, settings: Any) -> None:
    settings.PAM_SIGNUP_ENABLED = True
    assert b'href="/accounts/signup/"' in client.get("/accounts/login/").content
    settings.PAM_SIGNUP_ENABLED = False
    assert b'href="/accounts/signup/"' not in client.get("/accounts/login/").content


def test_signup_creates_user_and_signs_in(client: Client, settings: Any, django_user_model: Any) -> None:
    settings.PAM_SIGNUP_ENABLED = True
    assert client.get("/accounts/signup/").status_code == 200
    response = client.post("/accounts/signup/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert django_user_model.objects.filter(username="newbie").exists()
    assert client.get("/").status_code == 200


def test_signup_applies_password_validation(client: Client, settings: Any, django_user_model: Any) -> None:
    settings.PAM_SIGNUP_ENABLED = True
    response = client.post(
        "/accounts/signup/", {"username": "newbie", "password1": "12345678", "password2": "12345678"}
    )
    assert response.status_code == 200
    assert not django_user_model.objects.filter(username="newbie").exists()
    assert b"This password is too common." in response.content


def test_signup_is_404_when_disabled(client: Client, settings: Any, django_user_model: Any) -> None:
    settings.PAM_SIGNUP_ENABLED = False
    assert client.get("/accounts/signup/").status_code == 404
    response = client.post("/accounts/signup/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 404
    assert not django_user_model.objects.filter(username="newbie").exists()


def test_logout_ends_the_session(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


# --- JSON API ---


def test_conversations_lists_only_own_latest_first(client: Client, user: Any, other_user: Any) -> None:
    older = conversation_create(owner=user, title="Older", minutes=1)
    newer = conversation_create(owner=user, title="Newer", minutes=2)
    conversation_create(owner=other_user, title="Mallory's secret plan", minutes=3)
    client.force_login(user)
    response = client.get("/api/conversations/")
    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body["conversations"]] == [str(newer.id), str(older.id)]
    assert body["conversations"][0] == {"id": str(newer.id), "title": "Newer", "updated_at": "2025-01-01T00:02:00Z"}
    assert b"secret plan" not in response.content


def test_conversations_returns_a_first_page_of_thirty(client: Client, user: Any) -> None:
    for minute in range(51):
        conversation_create(owner=user, title=f"c{minute}", minutes=minute)
    client.force_login(user)
    body = client.get("/api/conversations/").json()
    titles = [c["title"] for c in body["conversations"]]
    assert len(titles) == 30
    assert titles[0] == "c50"
    assert "c0" not in titles
    assert body["next_cursor"]


def test_conversation_messages_in_order_with_fields(client: Client, user: Any) -> None:
    conversation = conversation_create(owner=user, title="Greetings")
    question = Message.objects.create(conversation=conversation, role="user", content="Hello?")
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Hi!",
        route="simple",
        provider="anthropic",
        model="claude-sonnet-5-5",
        status="complete",
        finish_reason="end_turn",
        client_msg_id="c-7",
    )
    UsageRecord.objects.create(message=answer, user=user, route="simple", provider="anthropic",
                               model="claude-sonnet-5-5", outcome="complete", fallback_from="openai",
                               fallback_reason="openai unavailable")
    client.force_login(user)
    response = client.get(f"/api/conversations/{conversation.id}/messages/")
    assert response.status_code == 200
    body = response.json()
    assert body["conversation"] == {"id": str(conversation.id), "title": "Greetings"}
    assert [m["id"] for m in body["messages"]] == [str(question.id), str(answer.id)]
    first, last = body["messages"]
    assert {k: last[k] for k in ("role", "content", "status", "model", "provider", "route", "finish_reason",
                                 "client_msg_id", "fallback")} == {
        "role": "assistant",
        "content": "Hi!",
        "status": "complete",
        "model": "claude-sonnet-5-5",
        "provider": "anthropic",
        "route": "simple",
        "finish_reason": "end_turn",
        "client_msg_id": "c-7",
        "fallback": {"from_provider": "openai", "reason": "openai unavailable"},
    }
    assert first["fallback"] is None
    assert last["created_at"].endswith("Z")


def test_conversation_messages_of_another_user_is_404_without_leaking(
    client: Client, user: Any, other_user: Any
) -> None:
    theirs = conversation_create(owner=other_user, title="Mallory's secret plan")
    Message.objects.create(conversation=theirs, role="user", content="the vault code is 1234")
    client.force_login(user)
    response = client.get(f"/api/conversations/{theirs.id}/messages/")
    assert response.status_code == 404
    assert b"secret plan" not in response.content
    assert b"vault" not in response.content


def test_conversation_messages_unknown_id_is_404(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.get("/api/conversations/00000000-0000-4000-8000-000000000000/messages/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "url", ["/api/conversations/", "/api/conversations/00000000-0000-4000-8000-000000000000/messages/"]
)
def test_api_answers_anonymous_with_401_json(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert "error" in json.loads(response.content)


def test_api_responses_are_not_cached(client: Client, user: Any) -> None:
    client.force_login(user)
    assert "no-store" in client.get("/api/conversations/")["Cache-Control"]


def test_anonymous_chat_gives_each_session_its_own_owner(settings: Any, django_user_model: Any) -> None:
    settings.PAM_ANONYMOUS_CHAT = True
    first, second = Client(), Client()
    assert first.get("/").status_code == 200 and second.get("/").status_code == 200
    guests = list(django_user_model.objects.filter(username__startswith="guest-"))
    assert len(guests) == 2 and not any(g.has_usable_password() for g in guests)
    mine = Conversation.objects.create(owner=guests[0], title="mine")
    owner_client = first if first.session["_auth_user_id"] == str(guests[0].pk) else second
    other_client = second if owner_client is first else first
    assert owner_client.get("/").status_code == 200  # the same session keeps its account
    assert django_user_model.objects.filter(username__startswith="guest-").count() == 2
    assert [c["id"] for c in owner_client.get("/api/conversations/").json()["conversations"]] == [str(mine.id)]
    assert other_client.get("/api/conversations/").json()["conversations"] == []
    assert other_client.get(f"/api/conversations/{mine.id}/messages/").status_code == 404


def test_anonymous_chat_is_off_by_default(client: Client, django_user_model: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not django_user_model.objects.exists()


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "x" * 60 + "production-like-secret-key",
           "ALLOWED_HOSTS": "chat.example.com", "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": ""}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr

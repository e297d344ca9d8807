"""Pages (chat, login, sign-up) and the small JSON API the chat page manages its conversations with.

Views stay thin: reads go through `pam_hybrid.conversations.selectors`, writes through
`pam_hybrid.conversations.services`, always scoped to `request.user`; the JSON shapes are `chat.transcripts`'.
Writes (PATCH, DELETE, POST) are CSRF-protected by Django's middleware: the page sends `X-CSRFToken`, read from the
`csrftoken` cookie (not HttpOnly) that the chat page makes sure of.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.contrib.auth import get_user_model, login
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pam_hybrid.chat import transcripts
from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations import selectors, services
from pam_hybrid.conversations.selectors import conversation_get_for_user
from pam_hybrid.models import Conversation
from pam_hybrid.runtime import live, shutdown, stopping

CONVERSATION_PAGE_DEFAULT = 30
CONVERSATION_PAGE_MAX = 100
TITLE_MAX_CHARS = 200  # Conversation.title's max_length
WEBSOCKET_PATH = "/ws/chat/"

View = TypeVar("View", bound=Callable[..., Any])


def api_login_required(view: View) -> View:
    """Like `login_required`, but answers 401 JSON instead of redirecting: the caller is page script, not a person."""

    if iscoroutinefunction(view):

        @wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not (await request.auser()).is_authenticated:
                return _unauthenticated()
            return cast(HttpResponse, await view(request, *args, **kwargs))

        return cast(View, markcoroutinefunction(async_wrapper))

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return _unauthenticated()
        return cast(HttpResponse, view(request, *args, **kwargs))

    return cast(View, wrapper)


def _unauthenticated() -> JsonResponse:
    return JsonResponse({"error": "authentication required"}, status=401)


def _not_found() -> JsonResponse:
    return JsonResponse({"error": "not found"}, status=404)


def _bad_request(error: str) -> JsonResponse:
    return JsonResponse({"error": error}, status=400)


def _json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _signed_in_user(request: HttpRequest) -> AbstractBaseUser:
    """The request's user, narrowed for the type checker; only called behind a login check."""
    user = request.user
    assert isinstance(user, AbstractBaseUser)
    return user


@require_GET
@never_cache
async def healthz(request: HttpRequest) -> HttpResponse:
    """For a load balancer: 503 while this process drains for a restart. Async, so it runs on the server's loop,
    whose answers it counts (`answer_tasks` counts the tasks themselves, to spot leaks)."""
    answer_tasks = sum(1 for task in asyncio.all_tasks() if task.get_name().startswith("answer-"))
    status = "draining" if shutdown.draining() else "ok"
    return JsonResponse(
        {"status": status, "answers_in_flight": sum(1 for _ in live.live_answers()), "answer_tasks": answer_tasks},
        status=503 if status == "draining" else 200,
    )


def _guest_login(request: HttpRequest) -> None:
    """Anonymous chat (PAM_ANONYMOUS_CHAT): the visitor's session gets an account of its own, with no password,
    so its conversations are scoped to it like anyone's."""
    guest = get_user_model().objects.create_user(username=f"guest-{uuid4().hex[:16]}")
    guest.set_unusable_password()
    guest.save(update_fields=["password"])
    login(request, guest, backend="django.contrib.auth.backends.ModelBackend")


@require_GET
@ensure_csrf_cookie
def chat(request: HttpRequest, conversation_id: UUID | None = None) -> HttpResponse:
    """The chat page; on /c/<id>/ opened on that conversation (404 unless it is the user's)."""
    if not request.user.is_authenticated:
        if not pam_settings().anonymous_chat:
            return redirect_to_login(request.get_full_path())
        _guest_login(request)
    if conversation_id is not None and conversation_get_for_user(
        user=_signed_in_user(request), conversation_id=conversation_id
    ) is None:
        raise Http404("No such conversation.")
    zero = UUID(int=0)
    context = {
        "ws_path": WEBSOCKET_PATH,
        "max_message_chars": pam_settings().max_message_chars,
        "messages_url_template": reverse("conversation_messages", args=[zero]),
        "conversation_url_template": reverse("conversation", args=[zero]),
        "branch_url_template": reverse("conversation_branch", args=[zero]),
        "export_url_template": reverse("conversation_export", args=[zero]),
        "page_url_template": reverse("chat_conversation", args=[zero]),
        "zero_uuid": str(zero),
        "conversation_id": str(conversation_id) if conversation_id is not None else "",
    }
    return render(request, "pam_hybrid/chat.html", context)


class PamLoginView(LoginView):
    """Django's login view, telling the template whether to offer sign-up."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["signup_enabled"] = pam_settings().signup_enabled
        return context


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account (Django's password validators apply), sign it in, and open the chat."""
    if not pam_settings().signup_enabled:
        raise Http404("Sign-up is disabled.")
    if request.user.is_authenticated:
        return redirect("chat")
    form: UserCreationForm[Any] = UserCreationForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")  # axes' backend is first too
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form})


def _conversation_summary(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.id, "title": conversation.title, "updated_at": conversation.updated_at}


def _page_limit(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return CONVERSATION_PAGE_DEFAULT
    try:
        limit = int(raw)
    except ValueError:
        return None
    return limit if 1 <= limit <= CONVERSATION_PAGE_MAX else None


@require_GET
@never_cache
@api_login_required
def conversations(request: HttpRequest) -> HttpResponse:
    """A page of the sidebar: ?q= searches titles and messages, ?cursor= continues, ?limit= (1-100, default 30)."""
    limit = _page_limit(request.GET.get("limit"))
    if limit is None:
        return _bad_request(f"limit must be a whole number from 1 to {CONVERSATION_PAGE_MAX}")
    try:
        page = selectors.conversation_page_for_user(
            user=_signed_in_user(request), query=request.GET.get("q", "").strip(),
            cursor=request.GET.get("cursor") or None, limit=limit,
        )
    except selectors.BadCursor:
        return _bad_request("that cursor is not one this server gave")
    return JsonResponse({
        "conversations": [_conversation_summary(c) for c in page.conversations], "next_cursor": page.next_cursor,
    })


@require_http_methods(["PATCH", "DELETE"])
@never_cache
@api_login_required
async def conversation(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """PATCH {"title": …} renames; DELETE deletes, stopping its answers first (in whichever process runs them)."""
    user = await request.auser()
    assert isinstance(user, AbstractBaseUser)
    found = await sync_to_async(conversation_get_for_user)(user=user, conversation_id=conversation_id)
    if found is None:
        return _not_found()
    if request.method == "DELETE":
        await stopping.conversation_answers_stop(found.id, user.pk)
        await sync_to_async(services.conversation_delete)(conversation=found)
        return HttpResponse(status=204)
    body = _json_body(request)
    title = body.get("title") if body is not None else None
    if not isinstance(title, str) or not title.strip():
        return _bad_request("the title must be some text")
    title = " ".join(title.split())
    if len(title) > TITLE_MAX_CHARS:
        return _bad_request(f"the title must be at most {TITLE_MAX_CHARS} characters")
    renamed = await sync_to_async(services.conversation_rename)(conversation=found, title=title)
    return JsonResponse({"conversation": _conversation_summary(renamed)})


def _branch_response(conversation: Conversation) -> JsonResponse:
    branch = selectors.conversation_branch(conversation=conversation)
    return JsonResponse(transcripts.branch_data(conversation, branch))


@require_GET
@never_cache
@api_login_required
def conversation_messages(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """The current branch, root to current leaf, each message with its versions, usage and parts."""
    conversation = conversation_get_for_user(user=_signed_in_user(request), conversation_id=conversation_id)
    if conversation is None:
        return _not_found()
    return _branch_response(conversation)


@require_POST
@never_cache
@api_login_required
def conversation_branch(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """Show the branch through {"message_id": …} (continuing to its newest leaf); answers as GET …/messages/."""
    conversation = conversation_get_for_user(user=_signed_in_user(request), conversation_id=conversation_id)
    if conversation is None:
        return _not_found()
    body = _json_body(request)
    try:
        message_id = UUID(str(body.get("message_id") if body is not None else None))
    except ValueError:
        return _bad_request("message_id must be a message's id")
    if not services.conversation_branch_select(conversation=conversation, message_id=message_id):
        return _not_found()
    return _branch_response(conversation)


@require_GET
@never_cache
@api_login_required
def conversation_export(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """A download: ?format=md (the current branch) or ?format=json (every message, every branch)."""
    conversation = conversation_get_for_user(user=_signed_in_user(request), conversation_id=conversation_id)
    if conversation is None:
        return _not_found()
    kind = request.GET.get("format", "md")
    name = slugify(conversation.title)[:80] or "conversation"
    if kind == "md":
        text = transcripts.branch_markdown(conversation, selectors.conversation_branch(conversation=conversation))
        content_type, filename = "text/markdown; charset=utf-8", f"{name}.md"
    elif kind == "json":
        tree = selectors.conversation_tree(conversation=conversation)
        parents = {m.id: tree.parent_of(m.id) for m in tree.messages}
        text = transcripts.conversation_json(conversation, list(tree.messages), parents)
        content_type, filename = "application/json", f"{name}.json"
    else:
        return _bad_request("format must be md or json")
    response = HttpResponse(text, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response

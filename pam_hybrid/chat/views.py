"""Pages (chat, login, sign-up) and the small JSON API the chat page reads its sidebar and history from.

Views stay thin: reads go through `pam_hybrid.conversations.selectors`, always scoped to `request.user`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import UUID, uuid4

from django.contrib.auth import get_user_model, login
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations.selectors import (
    conversation_get_for_user,
    conversation_list_for_user,
    message_list_for_conversation,
)
from pam_hybrid.models import Conversation, Message, UsageRecord
from pam_hybrid.runtime import live, shutdown

CONVERSATION_LIST_LIMIT = 50
WEBSOCKET_PATH = "/ws/chat/"

View = Callable[..., HttpResponse]


def api_login_required(view: View) -> View:
    """Like `login_required`, but answers 401 JSON instead of redirecting: the caller is page script, not a person."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "authentication required"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


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
def chat(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        if not pam_settings().anonymous_chat:
            return redirect_to_login(request.get_full_path())
        _guest_login(request)
    context = {
        "ws_path": WEBSOCKET_PATH,
        "max_message_chars": pam_settings().max_message_chars,
        "messages_url_template": reverse("conversation_messages", args=[UUID(int=0)]),
        "zero_uuid": str(UUID(int=0)),
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
        login(request, user)
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form})


def _conversation_summary(conversation: Conversation) -> dict[str, Any]:
    return {"id": conversation.id, "title": conversation.title, "updated_at": conversation.updated_at}


def _fallback(message: Message) -> dict[str, str] | None:
    try:
        usage = message.usage
    except UsageRecord.DoesNotExist:
        return None
    if not usage.fallback_from:
        return None
    return {"from_provider": usage.fallback_from, "reason": usage.fallback_reason}


def _message_data(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "finish_reason": message.finish_reason,
        "error": message.error,
        "model": message.model,
        "provider": message.provider,
        "route": message.route,
        "client_msg_id": message.client_msg_id,
        "fallback": _fallback(message),
        "created_at": message.created_at,
    }


@require_GET
@never_cache
@api_login_required
def conversations(request: HttpRequest) -> HttpResponse:
    items = conversation_list_for_user(user=_signed_in_user(request))[:CONVERSATION_LIST_LIMIT]
    return JsonResponse({"conversations": [_conversation_summary(c) for c in items]})


@require_GET
@never_cache
@api_login_required
def conversation_messages(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    conversation = conversation_get_for_user(user=_signed_in_user(request), conversation_id=conversation_id)
    if conversation is None:
        return JsonResponse({"error": "not found"}, status=404)
    messages = message_list_for_conversation(conversation=conversation)
    return JsonResponse(
        {
            "conversation": {"id": conversation.id, "title": conversation.title},
            "messages": [_message_data(m) for m in messages],
        }
    )

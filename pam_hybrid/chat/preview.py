"""POST api/route-preview: the route toggle's estimate of what the message being typed would cost on each route.

The page asks once typing pauses, never per keystroke. Each call reads the conversation's row (the owner check),
takes its context turns from Django's cache (keyed by the conversation, its current leaf and its last change, so a
new message or another branch misses it) and otherwise reads the branch once; the estimate is
`gateway.preview.route_costs`. A fixed window per user (`PREVIEW_LIMIT` per minute, in the cache so every process
shares it; keys in PAM_REDIS_PREFIX's namespace) bounds what one user can ask of the server.
"""

from __future__ import annotations

import math
import time
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from pam_hybrid.chat.views import _bad_request, _json_body, _not_found, _signed_in_user, api_login_required
from pam_hybrid.conf import PamSettings, pam_settings
from pam_hybrid.conversations import services
from pam_hybrid.conversations.selectors import conversation_get_for_user
from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.gateway.preview import context_turns, route_costs
from pam_hybrid.redis_client import redis_key

PREVIEW_LIMIT = 60
PREVIEW_WINDOW_S = 60
CONTEXT_CACHE_S = 600
_clock = time.time


def _over_limit(user_id: object) -> float | None:
    """Count this call in the user's window; the seconds until the next window (at least 0.1) if it is one too many."""
    now = _clock()
    window = math.floor(now / PREVIEW_WINDOW_S)
    key = redis_key(f"preview:{user_id}:{window}")
    cache.add(key, 0, PREVIEW_WINDOW_S + 1)
    if cache.incr(key) > PREVIEW_LIMIT:
        return max(0.1, math.ceil(((window + 1) * PREVIEW_WINDOW_S - now) * 10) / 10)
    return None


def _context(user: AbstractBaseUser, conversation_id: str, s: PamSettings) -> tuple[ChatTurn, ...] | None:
    """The context turns any message in the conversation could take (None: not the user's conversation)."""
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    if conversation is None:
        return None
    key = redis_key(f"preview-context:{conversation.id}:{conversation.current_leaf_id}:"
                    f"{conversation.updated_at.timestamp()}:{s.context_token_budget}")
    turns: tuple[ChatTurn, ...] | None = cache.get(key)
    if turns is None:
        place = services.conversation_history(user=user, conversation_id=conversation_id)
        turns = context_turns(place.turns if place is not None else [], s)
        cache.set(key, turns, CONTEXT_CACHE_S)
    return turns


@require_POST
@never_cache
@api_login_required
def route_preview(request: HttpRequest) -> HttpResponse:
    """{"content": …, "conversation_id": … or null} → {"routes": [{route, provider, model, input_tokens,
    output_tokens, cost_usd}, …]} (cost_usd a decimal string, or null when the model has no price)."""
    user = _signed_in_user(request)
    s = pam_settings()
    body = _json_body(request)
    content = body.get("content") if body is not None else None
    if not isinstance(content, str):
        return _bad_request("content must be the message's text")
    if len(content) > s.max_message_chars:
        return _bad_request(f"the message must be at most {s.max_message_chars} characters")
    conversation_id = body.get("conversation_id") if body is not None else None
    if conversation_id is not None:
        try:
            conversation_id = str(UUID(str(conversation_id)))
        except ValueError:
            return _bad_request("conversation_id must be a conversation's id")
    retry_after_s = _over_limit(user.pk)
    if retry_after_s is not None:
        response = JsonResponse({"error": "too many previews: try again shortly",
                                 "retry_after_s": retry_after_s}, status=429)
        response["Retry-After"] = str(math.ceil(retry_after_s))
        return response
    history = _context(user, conversation_id, s) if conversation_id is not None else ()
    if history is None:
        return _not_found()
    return JsonResponse({"routes": [cost.as_json() for cost in route_costs(content, history, s)]})

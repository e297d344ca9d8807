"""The `search_conversations` tool: the requesting user's own past messages containing some text, newest first.

Every query is scoped by `conversation__owner_id=context.user.pk`: no argument can widen it to another user.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from pydantic import Field

from pam_hybrid.models import Message
from pam_hybrid.tools.base import ToolArguments, ToolContext, tool

SNIPPET_CHARS = 200
MAX_RESULTS = 20


class SearchArgs(ToolArguments):
    query: str = Field(
        min_length=1,
        max_length=200,
        description="Text to look for in earlier messages (case-insensitive, matched literally), e.g. 'sourdough'.",
    )
    limit: int = Field(5, ge=1, le=MAX_RESULTS, description="How many matching messages to return, newest first.")


@tool(
    name="search_conversations",
    description=(
        "Search the current user's own earlier conversations with you for messages containing some text "
        "(a literal, case-insensitive match, not a semantic search: use a distinctive word). Use it when the user "
        "refers to something discussed before ('what did we decide about X', 'find that recipe from last week'). "
        "Returns matching messages, newest first, with their conversation's title and a snippet."
    ),
    timeout_ms=3000,
)
async def search_conversations(args: SearchArgs, context: ToolContext) -> dict[str, Any]:
    messages = message_search_for_user(
        user=context.user, query=args.query, exclude_conversation_id=context.conversation_id
    )
    matches = [_match(message, args.query) async for message in messages[: args.limit]]
    return {"query": args.query, "count": len(matches), "matches": matches}


def message_search_for_user(
    *, user: AbstractBaseUser, query: str, exclude_conversation_id: uuid.UUID | None = None
) -> QuerySet[Message]:
    """The user's own messages containing `query` (case-insensitive), newest first, with their conversation."""
    messages = (
        Message.objects.filter(conversation__owner_id=user.pk, content__icontains=query)
        .select_related("conversation")
        .order_by("-created_at")
    )
    if exclude_conversation_id is not None:
        messages = messages.exclude(conversation_id=exclude_conversation_id)
    return messages


def _match(message: Message, query: str) -> dict[str, Any]:
    return {
        "conversation_id": str(message.conversation_id),
        "conversation_title": message.conversation.title,
        "role": message.role,
        "snippet": snippet(message.content, query),
        "created_at": message.created_at.isoformat(),
    }


def snippet(content: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of `content` around the first match of `query`, whitespace collapsed, with an
    ellipsis on each side that was cut."""
    found = re.search(re.escape(query), content, re.IGNORECASE)
    match_start, match_length = (found.start(), len(found.group())) if found else (0, 0)
    start = max(0, min(match_start - (width - match_length) // 2, len(content) - width))
    end = start + width
    text = " ".join(content[start:end].split())
    return ("…" if start > 0 else "") + text + ("…" if end < len(content) else "")

"""A conversation as the page and its downloads see it: messages as JSON (with their versions, usage and the
answer's parts in stream order), the current branch as Markdown, the whole tree as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from pam_hybrid.conversations.selectors import Branch
from pam_hybrid.models import Conversation, Message, RoutingSignal, UsageRecord


def _usage_of(message: Message) -> UsageRecord | None:
    try:
        return message.usage
    except UsageRecord.DoesNotExist:
        return None


def _fallback(usage: UsageRecord | None) -> dict[str, str] | None:
    if usage is None or not usage.fallback_from:
        return None
    return {"from_provider": usage.fallback_from, "reason": usage.fallback_reason}


def _route_reason(usage: UsageRecord | None) -> str | None:
    """Why the answer took its route, as its `start` frame said: classifier, user or budget (None: not recorded)."""
    reason = usage.routing.get("reason") if usage is not None and isinstance(usage.routing, dict) else None
    return reason if isinstance(reason, str) else None


def usage_data(usage: UsageRecord | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": None if usage.cost_usd is None else f"{usage.cost_usd:f}",
        "estimated": usage.usage_estimated,
        "ttft_ms": usage.ttft_ms,
        "total_ms": usage.total_ms,
    }


def message_parts(message: Message) -> list[dict[str, Any]]:
    """The message in stream order: text segments, tool calls and tool results, rebuilt from its stream log (a
    token entry is the text's end offset after it; other frames are whole), so text on either side of a tool round
    stays apart."""
    content = message.content
    parts: list[dict[str, Any]] = []

    def text(upto: int) -> None:
        segment = content[offset:upto]
        if not segment:
            return
        if parts and parts[-1]["type"] == "text":
            parts[-1]["content"] += segment
        else:
            parts.append({"type": "text", "content": segment})

    offset = 0
    for entry in message.stream_log or []:
        if isinstance(entry, int):
            text(entry)
            offset = max(offset, entry)
            continue
        kind, meta = entry.get("chunk_type"), entry.get("metadata", {})
        if kind == "tool_call":
            parts.append({"type": "tool_call", "call_id": meta.get("call_id"), "name": meta.get("name"),
                          "arguments": meta.get("arguments")})
        elif kind == "tool_result":
            parts.append({"type": "tool_result", "call_id": meta.get("call_id"), "name": meta.get("name"),
                          "ok": meta.get("ok"), "content": entry.get("content", ""),
                          "duration_ms": meta.get("duration_ms")})
    text(len(content))  # text the log does not cover (a row written before stream logs, or by hand)
    return parts


FEEDBACK_VALUES: dict[str | None, str] = {RoutingSignal.Kind.THUMBS_UP: "up", RoutingSignal.Kind.THUMBS_DOWN: "down"}


def message_data(message: Message, *, parent_id: Any, siblings: list[Any]) -> dict[str, Any]:
    usage = _usage_of(message)
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
        "route_reason": _route_reason(usage),
        "client_msg_id": message.client_msg_id,
        "fallback": _fallback(usage),
        "tool_calls": message.tool_calls,
        "created_at": message.created_at,
        "parent_id": parent_id,
        "siblings": siblings,
        "usage": usage_data(usage) if message.role == Message.Role.ASSISTANT else None,
        "parts": message_parts(message),
        "feedback": FEEDBACK_VALUES.get(getattr(message, "feedback", None)),  # the owner's thumbs: up, down or None
    }


def branch_data(conversation: Conversation, branch: Branch) -> dict[str, Any]:
    """What GET …/messages/ (and a branch switch) answers: the conversation and its current branch."""
    return {
        "conversation": {"id": conversation.id, "title": conversation.title},
        "messages": [
            message_data(m, parent_id=branch.parents[m.id], siblings=branch.siblings[m.id]) for m in branch.messages
        ],
    }


def _markdown_answer(message: Message) -> list[str]:
    lines: list[str] = []
    for part in message_parts(message):
        if part["type"] == "text":
            lines += [part["content"].strip(), ""]
        elif part["type"] == "tool_call":
            arguments = part["arguments"]
            shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
            lines += [f"> Tool call: `{part['name']}` with `{shown}`", ""]
        elif part["type"] == "tool_result":
            outcome = "ok" if part["ok"] else "failed"
            lines += [f"> Tool result ({outcome}, {part['duration_ms']} ms): `{part['content']}`", ""]
    if message.error:
        lines += [f"*{message.error}*", ""]
    return lines


def branch_markdown(conversation: Conversation, branch: Branch) -> str:
    """The current branch as Markdown: the title as a heading, then each turn with its role (and model)."""
    lines = [f"# {conversation.title or 'Conversation'}", ""]
    for message in branch.messages:
        if message.role == Message.Role.USER:
            lines += ["## You", "", message.content.strip(), ""]
        else:
            lines += [f"## Assistant ({message.model})" if message.model else "## Assistant", ""]
            lines += _markdown_answer(message)
    return "\n".join(lines).rstrip() + "\n"


def conversation_json(conversation: Conversation, messages: list[Message], parents: dict[Any, Any]) -> str:
    """Every message of the conversation (all branches) with its parent and usage, as JSON text."""
    data = {
        "conversation": {
            "id": conversation.id, "title": conversation.title, "created_at": conversation.created_at,
            "updated_at": conversation.updated_at, "current_leaf_id": conversation.current_leaf_id,
        },
        "messages": [
            {
                "id": m.id, "parent_id": parents.get(m.id), "role": m.role, "content": m.content, "status": m.status,
                "route": m.route, "provider": m.provider, "model": m.model, "finish_reason": m.finish_reason,
                "error": m.error, "created_at": m.created_at, "tool_calls": m.tool_calls,
                "usage": usage_data(_usage_of(m)) if m.role == Message.Role.ASSISTANT else None,
            }
            for m in messages
        ],
    }
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2) + "\n"

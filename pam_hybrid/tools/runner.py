"""Running the models' tool calls: arguments validated, each call time-limited, several at once, and every
outcome (unknown tool, bad arguments, timeout, failure) turned into a result the model sees, never an exception.
Only cancellation (the user stopped the answer) propagates.

A result's `content` is always JSON text: `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from pam_hybrid.domain.chunks import ToolCall, ToolResult
from pam_hybrid.tools.base import Tool, ToolContext, ToolError
from pam_hybrid.tools.registry import all_tools, get_tool

logger = logging.getLogger(__name__)

TOOL_FAILED = "The tool failed unexpectedly. Try again later or answer without it."
MAX_VALIDATION_ERRORS = 5
MAX_ERROR_MESSAGE_CHARS = 200
MAX_CONTENT_CHARS = 20_000


async def run_tool_calls(calls: Sequence[ToolCall], context: ToolContext) -> list[ToolResult]:
    """Run the calls concurrently; their results in call order. One call failing never cancels the others
    (`run_tool_call` does not raise), while cancelling this cancels and awaits them all."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run_tool_call(call, context)) for call in calls]
    return [task.result() for task in tasks]


async def run_tool_call(call: ToolCall, context: ToolContext) -> ToolResult:
    """Run one call for `context.user`; whatever happens short of cancellation, a result."""
    started = time.perf_counter()
    ok, content = await _outcome(call, context)
    duration_ms = (time.perf_counter() - started) * 1000
    return ToolResult(call_id=call.call_id, name=call.name, ok=ok, content=content, duration_ms=duration_ms)


async def _outcome(call: ToolCall, context: ToolContext) -> tuple[bool, str]:
    tool = get_tool(call.name)
    if tool is None:
        known = ", ".join(t.name for t in all_tools())
        return False, error_content(f"Unknown tool {call.name!r}. Available tools: {known}.")
    try:
        arguments = tool.arguments.model_validate_json(call.arguments_json.strip() or "{}")
    except ValidationError as exc:
        return False, error_content(describe_validation_error(exc))
    ok, payload = await _invoke(tool, arguments, context)
    return _result_content(tool, payload) if ok else (False, error_content(payload))


async def _invoke(tool: Tool[Any], arguments: BaseModel, context: ToolContext) -> tuple[bool, Any]:
    """(True, the tool's result) or (False, an error message for the model)."""
    deadline = asyncio.timeout(tool.timeout_ms / 1000)
    try:
        async with deadline:
            return True, await tool.run(arguments, context)
    except ToolError as exc:
        return False, exc.user_message
    except Exception:
        if deadline.expired():
            return False, f"The tool {tool.name} did not finish within {tool.timeout_ms} ms."
        logger.exception("Tool %s failed", tool.name)
        return False, TOOL_FAILED


def _result_content(tool: Tool[Any], result: Any) -> tuple[bool, str]:
    try:
        content = json.dumps({"ok": True, "result": result}, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        logger.exception("Tool %s returned a result that is not JSON-serialisable", tool.name)
        return False, error_content(TOOL_FAILED)
    if len(content) > MAX_CONTENT_CHARS:
        logger.warning("Tool %s returned %d characters (limit %d)", tool.name, len(content), MAX_CONTENT_CHARS)
        return False, error_content("The tool's result was too large. Ask for less (e.g. a smaller limit).")
    return True, content


def error_content(message: str) -> str:
    return json.dumps({"ok": False, "error": message}, ensure_ascii=False)


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one short line for the model: where and what, no input echoed, no traceback."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    parts = [f"{_location(error['loc'])}: {error['msg'][:MAX_ERROR_MESSAGE_CHARS]}" for error in errors]
    if len(parts) > MAX_VALIDATION_ERRORS:
        parts = [*parts[:MAX_VALIDATION_ERRORS], f"and {len(parts) - MAX_VALIDATION_ERRORS} more"]
    return "Invalid arguments: " + "; ".join(parts) + "."


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "") or "arguments"

"""Running tool calls: every failure becomes a result the model sees, calls run concurrently, and only
cancellation (the user stopped the answer) propagates."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from pydantic import Field

from pam_hybrid.domain.chunks import ToolCall, ToolResult
from pam_hybrid.tools.base import Tool, ToolArguments, ToolContext, ToolError, tool
from pam_hybrid.tools.registry import register, unregister
from pam_hybrid.tools.runner import TOOL_FAILED, run_tool_call, run_tool_calls

Register = Callable[[Tool[Any]], Tool[Any]]


class SleepArgs(ToolArguments):
    seconds: float = Field(ge=0, le=5)


class EchoArgs(ToolArguments):
    text: str
    count: int = Field(1, ge=1, le=3)


@pytest.fixture
def context() -> ToolContext:
    return ToolContext(user=get_user_model()(username="runner"))


@pytest.fixture
def register_tool() -> Iterator[Register]:
    """Register test tools for one test only."""
    names: list[str] = []

    def add(t: Tool[Any]) -> Tool[Any]:
        register(t)
        names.append(t.name)
        return t

    yield add
    for name in names:
        unregister(name)


def _sleeper(name: str, timeout_ms: int = 5000, seen: list[str] | None = None) -> Tool[SleepArgs]:
    @tool(name=name, description="Sleeps.", timeout_ms=timeout_ms, arguments=SleepArgs)
    async def sleep(args: SleepArgs, context: ToolContext) -> dict[str, Any]:
        try:
            await asyncio.sleep(args.seconds)
        except asyncio.CancelledError:
            if seen is not None:
                seen.append(name)
            raise
        return {"slept": args.seconds}

    return sleep


def _raiser(name: str, error: BaseException) -> Tool[ToolArguments]:
    @tool(name=name, description="Fails.", arguments=ToolArguments)
    async def fail(args: ToolArguments, context: ToolContext) -> None:
        raise error

    return fail


def _returner(name: str, value: Any) -> Tool[ToolArguments]:
    @tool(name=name, description="Returns a value.", arguments=ToolArguments)
    async def give(args: ToolArguments, context: ToolContext) -> Any:
        return value

    return give


def _body(result: ToolResult) -> dict[str, Any]:
    body = json.loads(result.content)
    assert body["ok"] is result.ok
    return body


async def test_success_is_ok_with_the_result_as_json(context: ToolContext, register_tool: Register) -> None:
    @tool(name="echo", description="Echo.", arguments=EchoArgs)
    async def echo(args: EchoArgs, context: ToolContext) -> dict[str, Any]:
        return {"echo": args.text * args.count}

    register_tool(echo)
    result = await run_tool_call(ToolCall("call_1", "echo", '{"text": "hé", "count": 2}'), context)
    assert (result.call_id, result.name, result.ok) == ("call_1", "echo", True)
    assert _body(result) == {"ok": True, "result": {"echo": "héhé"}}
    assert result.duration_ms > 0


async def test_unknown_tool_is_an_error_result_naming_the_tools_there_are(context: ToolContext) -> None:
    result = await run_tool_call(ToolCall("c", "delete_everything", "{}"), context)
    assert (result.call_id, result.name, result.ok) == ("c", "delete_everything", False)
    error = _body(result)["error"]
    assert "delete_everything" in error
    assert "calculate" in error


async def test_invalid_json_is_an_error_result(context: ToolContext) -> None:
    result = await run_tool_call(ToolCall("c", "calculate", '{"expression": "1+1"'), context)
    error = _body(result)["error"]
    assert not result.ok
    assert "Invalid JSON" in error
    assert "Traceback" not in error


async def test_arguments_failing_validation_say_what_was_wrong(context: ToolContext) -> None:
    result = await run_tool_call(ToolCall("c", "search_conversations", '{"limit": 99, "user_id": 7}'), context)
    error = _body(result)["error"]
    assert not result.ok
    assert "query: Field required" in error
    assert "limit: Input should be less than or equal to 20" in error
    assert "user_id: Extra inputs are not permitted" in error
    assert "https://" not in error  # pydantic's documentation links are trimmed


async def test_validation_errors_are_trimmed(context: ToolContext) -> None:
    many = json.dumps({f"unexpected_{i}": i for i in range(12)})
    result = await run_tool_call(ToolCall("c", "calculate", many), context)
    error = _body(result)["error"]
    # 13 errors (the missing expression and 12 extras): five shown, the rest counted.
    assert error.count("; ") == 5  # five errors, then the count
    assert error.startswith("Invalid arguments: expression: Field required;")
    assert error.endswith("; and 8 more.")


async def test_empty_arguments_mean_no_arguments(context: ToolContext) -> None:
    result = await run_tool_call(ToolCall("c", "current_datetime", ""), context)
    assert result.ok
    assert _body(result)["result"]["timezone"] == "UTC"


async def test_timeout_is_an_error_result(context: ToolContext, register_tool: Register) -> None:
    register_tool(_sleeper("slow", timeout_ms=50))
    result = await run_tool_call(ToolCall("c", "slow", '{"seconds": 5}'), context)
    assert not result.ok
    assert _body(result)["error"] == "The tool slow did not finish within 50 ms."
    assert 45 <= result.duration_ms < 1000


async def test_tool_error_message_passes_through(context: ToolContext, register_tool: Register) -> None:
    register_tool(_raiser("picky", ToolError("No such city 'Atlantis'.")))
    result = await run_tool_call(ToolCall("c", "picky", "{}"), context)
    assert _body(result) == {"ok": False, "error": "No such city 'Atlantis'."}


async def test_unexpected_exception_is_a_generic_error_result_and_logged(
    context: ToolContext, register_tool: Register, caplog: pytest.LogCaptureFixture
) -> None:
    register_tool(_raiser("broken", RuntimeError("password=hunter2 at db.internal")))
    with caplog.at_level(logging.ERROR, logger="pam_hybrid.tools.runner"):
        result = await run_tool_call(ToolCall("c", "broken", "{}"), context)
    assert _body(result) == {"ok": False, "error": TOOL_FAILED}
    assert "hunter2" not in result.content
    [record] = [r for r in caplog.records if r.name == "pam_hybrid.tools.runner"]
    assert record.exc_info is not None
    assert "broken" in record.getMessage()


async def test_a_tools_own_timeout_error_is_a_failure_not_our_timeout(
    context: ToolContext, register_tool: Register
) -> None:
    register_tool(_raiser("flaky_upstream", TimeoutError()))
    result = await run_tool_call(ToolCall("c", "flaky_upstream", "{}"), context)
    assert _body(result) == {"ok": False, "error": TOOL_FAILED}


@pytest.mark.parametrize("value", [object(), float("nan"), {1, 2}])
async def test_a_result_that_is_not_json_is_an_error_result(
    context: ToolContext, register_tool: Register, value: Any
) -> None:
    register_tool(_returner("odd", value))
    result = await run_tool_call(ToolCall("c", "odd", "{}"), context)
    assert _body(result) == {"ok": False, "error": TOOL_FAILED}


async def test_a_huge_result_is_an_error_result(context: ToolContext, register_tool: Register) -> None:
    register_tool(_returner("chatty", "x" * 50_000))
    result = await run_tool_call(ToolCall("c", "chatty", "{}"), context)
    assert not result.ok
    assert "too large" in _body(result)["error"]


async def test_calls_run_concurrently(context: ToolContext, register_tool: Register) -> None:
    register_tool(_sleeper("slow_a"))
    register_tool(_sleeper("slow_b"))
    calls = [ToolCall("a", "slow_a", '{"seconds": 0.3}'), ToolCall("b", "slow_b", '{"seconds": 0.3}')]
    started = time.perf_counter()
    results = await run_tool_calls(calls, context)
    elapsed = time.perf_counter() - started
    assert [r.ok for r in results] == [True, True]
    assert elapsed < 0.5


async def test_results_come_in_call_order_and_one_failure_spares_the_others(
    context: ToolContext, register_tool: Register
) -> None:
    register_tool(_sleeper("nap"))
    register_tool(_raiser("boom", RuntimeError("boom")))
    calls = [
        ToolCall("first", "nap", '{"seconds": 0.2}'),
        ToolCall("second", "boom", "{}"),
        ToolCall("third", "nap", '{"seconds": 0}'),
        ToolCall("fourth", "missing_tool", "{}"),
    ]
    results = await run_tool_calls(calls, context)
    assert [(r.call_id, r.ok) for r in results] == [("first", True), ("second", False), ("third", True),
                                                   ("fourth", False)]
    assert _body(results[0])["result"] == {"slept": 0.2}


async def test_no_calls_no_results(context: ToolContext) -> None:
    assert await run_tool_calls([], context) == []


async def test_cancellation_propagates_and_cancels_every_call(context: ToolContext, register_tool: Register) -> None:
    seen: list[str] = []
    register_tool(_sleeper("long_a", seen=seen))
    register_tool(_sleeper("long_b", seen=seen))
    calls = [ToolCall("a", "long_a", '{"seconds": 5}'), ToolCall("b", "long_b", '{"seconds": 5}')]
    task = asyncio.create_task(run_tool_calls(calls, context))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(seen) == ["long_a", "long_b"]


async def test_cancelling_one_call_propagates(context: ToolContext, register_tool: Register) -> None:
    register_tool(_sleeper("long"))
    task = asyncio.create_task(run_tool_call(ToolCall("a", "long", '{"seconds": 5}'), context))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

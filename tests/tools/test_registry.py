"""The registry offers each built-in tool once, with a schema both providers accept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pam_hybrid.tools.base import Tool, ToolArguments, ToolContext
from pam_hybrid.tools.registry import all_tools, get_tool, register, unregister

BUILT_INS = {
    "current_datetime": ({"timezone"}, []),
    "calculate": ({"expression"}, ["expression"]),
    "search_conversations": ({"query", "limit"}, ["query"]),
    "my_usage": ({"days"}, []),
}
JSON_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}


def _all_keys(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        return set(schema) | {key for value in schema.values() for key in _all_keys(value)}
    if isinstance(schema, list):
        return {key for value in schema for key in _all_keys(value)}
    return set()


def test_every_built_in_is_registered_once() -> None:
    names = [t.name for t in all_tools()]
    assert sorted(names) == sorted(BUILT_INS)
    assert all(get_tool(name) is not None for name in BUILT_INS)


def test_unknown_name_is_none() -> None:
    assert get_tool("rm_rf") is None


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_built_in_schema_is_plain_json_schema(name: str) -> None:
    tool = get_tool(name)
    assert tool is not None
    schema = tool.json_schema()
    properties, required = BUILT_INS[name]
    assert json.loads(json.dumps(schema)) == schema
    assert schema["type"] == "object"
    assert set(schema["properties"]) == properties
    assert schema["required"] == required
    assert schema["additionalProperties"] is False
    assert "title" not in _all_keys({k: v for k, v in schema.items() if k != "properties"})
    for prop in schema["properties"].values():
        assert prop["type"] in JSON_TYPES
        assert "title" not in prop
        assert prop["description"]
    assert len(tool.description) > 40  # it tells the model when to use it


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_built_in_runs_with_only_its_required_arguments(name: str) -> None:
    tool = get_tool(name)
    assert tool is not None
    example = {key: "x" for key in tool.json_schema()["required"]}
    tool.arguments.model_validate(example)


async def _noop(args: ToolArguments, context: ToolContext) -> None:
    return None


def test_register_refuses_a_taken_name_and_unregister_frees_it() -> None:
    clash = Tool(name="calculate", description="Another calculator.", arguments=ToolArguments, run=_noop)
    with pytest.raises(ValueError, match="already registered"):
        register(clash)
    assert get_tool("calculate") is not clash

    extra = Tool(name="extra_tool", description="Extra.", arguments=ToolArguments, run=_noop)
    register(extra)
    try:
        assert get_tool("extra_tool") is extra
        assert all_tools()[-1] is extra
    finally:
        unregister("extra_tool")
    assert get_tool("extra_tool") is None

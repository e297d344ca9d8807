"""Declaring a tool: the decorator reads the arguments model from the type hints; the schema is tidied once."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from pam_hybrid.domain.exceptions import PamError
from pam_hybrid.tools.base import Tool, ToolArguments, ToolContext, ToolError, tidy_schema, tool


class Point(BaseModel):
    x: int
    y: int


class NoteArgs(ToolArguments):
    title: str = Field(description="A property that happens to be called title.")
    tags: list[str] = Field(default_factory=list)
    at: Point | None = None


@tool(name="take_note", description="Take a note.", timeout_ms=250)
async def take_note(args: NoteArgs, context: ToolContext) -> dict[str, Any]:
    return {"title": args.title}


def test_decorator_builds_a_tool_from_the_type_hints() -> None:
    assert isinstance(take_note, Tool)
    assert (take_note.name, take_note.description, take_note.timeout_ms) == ("take_note", "Take a note.", 250)
    assert take_note.arguments is NoteArgs


def test_schema_is_an_object_with_properties_and_required_and_no_titles() -> None:
    schema = take_note.json_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"title", "tags", "at"}
    assert schema["required"] == ["title"]
    assert schema["properties"]["title"] == {
        "type": "string", "description": "A property that happens to be called title."
    }
    assert schema["additionalProperties"] is False
    assert "title" not in schema
    assert all("title" not in sub for sub in schema["$defs"].values())
    assert all("title" not in option for option in schema["properties"]["at"]["anyOf"])


def test_schema_of_a_model_without_fields_still_names_properties_and_required() -> None:
    class NoArgs(BaseModel):
        pass

    # A model defined in a function cannot be found from a string annotation: it is named explicitly.
    @tool(name="ping", description="Ping.", arguments=NoArgs)
    async def ping(args: NoArgs, context: ToolContext) -> str:
        return "pong"

    assert ping.json_schema() == {"type": "object", "properties": {}, "required": []}


def test_tidy_schema_keeps_a_property_named_title_and_does_not_mutate() -> None:
    original = {"title": "X", "type": "object", "properties": {"title": {"title": "Title", "type": "string"}}}
    assert tidy_schema(original) == {"type": "object", "properties": {"title": {"type": "string"}}}
    assert original["title"] == "X"


def test_arguments_refuse_unknown_keys_and_strip_strings() -> None:
    assert NoteArgs.model_validate({"title": "  hi  "}).title == "hi"
    with pytest.raises(ValueError, match="Extra inputs"):
        NoteArgs.model_validate({"title": "hi", "user_id": 2})


def test_explicit_arguments_model_wins_over_the_hint() -> None:
    @tool(name="note_again", description="Note.", arguments=NoteArgs)
    async def note_again(args: Any, context: ToolContext) -> None: ...

    assert note_again.arguments is NoteArgs


def test_first_parameter_must_be_a_pydantic_model() -> None:
    with pytest.raises(TypeError, match="pydantic model"):

        @tool(name="bad", description="Bad.")
        async def bad(args: dict[str, Any], context: ToolContext) -> None: ...


def test_run_must_be_async() -> None:
    def sync_run(args: NoteArgs, context: ToolContext) -> None: ...

    with pytest.raises(TypeError, match="async"):
        Tool(name="sync", description="Sync.", arguments=NoteArgs, run=sync_run)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "dots.not.allowed", "x" * 65])
def test_names_the_providers_would_refuse_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        Tool(name=name, description="d", arguments=NoteArgs, run=take_note.run)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_ms"):
        Tool(name="t", description="d", arguments=NoteArgs, run=take_note.run, timeout_ms=0)


def test_tool_error_is_a_pam_error_whose_message_is_for_the_user() -> None:
    error = ToolError("Unknown time zone 'Mars/Olympus'")
    assert isinstance(error, PamError)
    assert error.user_message == str(error) == "Unknown time zone 'Mars/Olympus'"

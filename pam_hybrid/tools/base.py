"""What a tool is: a name, a description telling the model when to use it, a pydantic arguments model (the one
source of its JSON schema, for every provider) and an async function run with the requesting user's context.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from django.contrib.auth.base_user import AbstractBaseUser
from pydantic import BaseModel, ConfigDict

from pam_hybrid.domain.exceptions import PamError

ArgsT = TypeVar("ArgsT", bound=BaseModel)

DEFAULT_TIMEOUT_MS = 5000
# Both providers accept tool names matching this (OpenAI's is the stricter rule).
_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Keys holding a mapping of name -> schema, or a single schema, or a list of schemas (JSON Schema keywords).
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


class ToolError(PamError):
    """A failure written for the model (and the user): its message is returned as the tool's error result."""

    user_message = "The tool could not do that."

    def __init__(self, message: str) -> None:
        super().__init__(message, user_message=message)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who a tool runs for. `user` is the only user whose data a tool may read; `conversation_id`, when set, is
    the conversation the call came from (so a search of past conversations can leave it out)."""

    user: AbstractBaseUser
    conversation_id: UUID | None = None


ToolFunction = Callable[[ArgsT, ToolContext], Awaitable[Any]]


class ToolArguments(BaseModel):
    """A base for arguments models: unknown arguments are refused (and the schema says so), strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


@dataclass(frozen=True, slots=True)
class Tool(Generic[ArgsT]):
    """A tool the models may call. `run` returns something JSON-serialisable or raises `ToolError`."""

    name: str
    description: str
    arguments: type[ArgsT]
    run: ToolFunction[ArgsT]
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ValueError(f"Tool name {self.name!r} must match {_NAME_PATTERN.pattern}")
        if not inspect.iscoroutinefunction(self.run):
            raise TypeError(f"Tool {self.name!r}: run must be an async function")
        if self.timeout_ms <= 0:
            raise ValueError(f"Tool {self.name!r} needs a positive timeout_ms")

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema, as both OpenAI `parameters` and Anthropic `input_schema` take it."""
        schema = tidy_schema(self.arguments.model_json_schema())
        properties = schema.pop("properties", {})
        required = schema.pop("required", [])
        return {"type": "object", "properties": properties, "required": required, **schema}


def tidy_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a pydantic JSON schema without `title` keywords (noise to a model); property names are kept,
    even one called "title"."""
    tidy: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            tidy[key] = {name: tidy_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            tidy[key] = tidy_schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            tidy[key] = [tidy_schema(sub) if isinstance(sub, dict) else sub for sub in value]
        else:
            tidy[key] = value
    return tidy


def tool(
    *, name: str, description: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, arguments: type[ArgsT] | None = None
) -> Callable[[ToolFunction[ArgsT]], Tool[ArgsT]]:
    """Declare a tool from an async function `(args: SomeArgs, context: ToolContext)`: its arguments model is
    read from the type hint of its first parameter, unless given (needed when the model is not module-level)."""

    def declare(function: ToolFunction[ArgsT]) -> Tool[ArgsT]:
        return Tool(
            name=name,
            description=description,
            arguments=arguments or _arguments_model(function),
            run=function,
            timeout_ms=timeout_ms,
        )

    return declare


def _arguments_model(function: Callable[..., Any]) -> type[Any]:
    hints = typing.get_type_hints(function)
    hints.pop("return", None)
    first = next(iter(hints.values()), None)
    if not (isinstance(first, type) and issubclass(first, BaseModel)):
        raise TypeError(f"{function.__qualname__}: the first parameter must be annotated with a pydantic model")
    return first

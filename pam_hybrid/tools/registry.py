"""Where tools are registered and looked up by name. Adding a tool: a module and one `register` line."""

from __future__ import annotations

from typing import Any

from pam_hybrid.tools.arithmetic import calculate
from pam_hybrid.tools.base import Tool
from pam_hybrid.tools.clock import current_datetime
from pam_hybrid.tools.conversation_search import search_conversations
from pam_hybrid.tools.usage import my_usage

_TOOLS: dict[str, Tool[Any]] = {}


def register(tool: Tool[Any]) -> None:
    """Offer `tool` to the models. Names are unique: registering a second tool under a taken name is a bug."""
    if tool.name in _TOOLS:
        raise ValueError(f"A tool named {tool.name!r} is already registered")
    _TOOLS[tool.name] = tool


def unregister(name: str) -> None:
    """Stop offering the named tool (for tests that register one temporarily); unknown names are ignored."""
    _TOOLS.pop(name, None)


def get_tool(name: str) -> Tool[Any] | None:
    return _TOOLS.get(name)


def all_tools() -> list[Tool[Any]]:
    """Every registered tool, in registration order."""
    return list(_TOOLS.values())


register(current_datetime)
register(calculate)
register(search_conversations)
register(my_usage)

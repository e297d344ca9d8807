"""Anthropic needs alternating roles starting with the user; history from the database may not be."""

from __future__ import annotations

from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.providers.anthropic_messages import alternating_turns


def test_leading_assistant_dropped_and_same_roles_merged() -> None:
    turns = (
        ChatTurn("assistant", "orphan"),
        ChatTurn("user", "one"),
        ChatTurn("user", "two"),
        ChatTurn("assistant", "reply"),
        ChatTurn("user", "three"),
    )
    assert alternating_turns(turns) == [
        {"role": "user", "content": "one\n\ntwo"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "three"},
    ]

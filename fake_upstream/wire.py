"""What both wire formats share: status reason phrases, compact JSON, and JSON cut off for a malformed event."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

CUT_MARK = "\x00cut"
"""Marks where :func:`cut_json` cuts a malformed event's JSON (a string holding it is cut just before it)."""


def reason_phrase(status: int) -> str:
    """Reason phrase of a status line; Anthropic's non-standard 529 included."""
    if status == 529:
        return "Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def cut_json(data: Any) -> str:
    """``data`` as JSON, cut off inside the string value that holds ``CUT_MARK``, just before the mark."""
    text = dumps(data)
    return text[: text.index(dumps(CUT_MARK)[1:-1])]

"""A chunk's frame text is the one JSON encoding of its frame, whichever way it is written (token frames, the most
frequent, are written directly), and reads back as the same chunk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pam_hybrid.domain.chunks import StreamChunk

CONTENTS = ["Paris ", "", 'quote " backslash \\ newline \n tab \t', "é ü 中文 😀", "\u2028\u2029\x00\x1f\x7f",
            "\ud800 lone surrogate", "</script>"]
METADATA: list[dict[str, Any]] = [{"seq": 0}, {"seq": 12345}, {"seq": True}, {"seq": 1.5}, {"seq": "3"},
                                  {"seq": 3, "provider": "openai"}, {}]


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("metadata", METADATA)
@pytest.mark.parametrize("chunk_type", ["token", "start"])
def test_frame_text_is_the_frames_json(chunk_type: Any, content: str, metadata: dict[str, Any]) -> None:
    chunk = StreamChunk(chunk_type, content, dict(metadata), timestamp='2026-12-06T03:00:00.000001Z "odd"')
    text = chunk.frame_text()
    assert text == json.dumps(chunk.to_frame(), ensure_ascii=False)
    assert StreamChunk.from_frame(json.loads(text)) == chunk


def test_a_new_chunk_has_a_timestamp_its_frame_carries() -> None:
    chunk = StreamChunk("token", "a", {"seq": 1})
    assert json.loads(chunk.frame_text())["timestamp"] == chunk.timestamp and chunk.timestamp.endswith("Z")

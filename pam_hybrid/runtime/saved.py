"""The frames of a saved answer after a given sequence number, rebuilt from its stream log, for a client that
resumes an answer which has already ended (or was checkpointed by a process that is gone)."""

from __future__ import annotations

from typing import Any

from pam_hybrid.domain.chunks import StreamChunk


def chunk_from_frame(frame: dict[str, Any]) -> StreamChunk:
    return StreamChunk(frame["chunk_type"], frame.get("content", ""), dict(frame.get("metadata", {})),
                       frame.get("timestamp", ""))


def frames_after(stream_log: list[Any], text: str, after_seq: int) -> list[StreamChunk]:
    """The chunks numbered after `after_seq`. Consecutive tokens are sent as one, numbered as the last of them."""
    offset = 0
    for entry in stream_log[: max(after_seq + 1, 0)]:
        if isinstance(entry, int):
            offset = entry
    chunks: list[StreamChunk] = []
    pending_end: int | None = None
    for seq in range(max(after_seq + 1, 0), len(stream_log)):
        entry = stream_log[seq]
        if isinstance(entry, int):
            pending_end = entry
            if seq + 1 < len(stream_log) and isinstance(stream_log[seq + 1], int):
                continue
            chunks.append(StreamChunk("token", text[offset:pending_end], {"seq": seq}))
            offset = pending_end
        else:
            chunks.append(chunk_from_frame(entry))
    return chunks

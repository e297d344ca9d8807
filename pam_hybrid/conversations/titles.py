"""A conversation's short title, made from its first message by a heuristic: plain text, never raw markdown."""

from __future__ import annotations

import re

TITLE_MAX_CHARS = 60
UNTITLED = "New chat"

_FENCE = re.compile(r"^\s*(```|~~~).*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_LINE_MARKER = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+)+")
_RULE = re.compile(r"^\s*([-*_=])(\s*\1){2,}\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_EMPHASIS = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_SINGLE_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_CODE = re.compile(r"`+([^`]*)`+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _plain_line(line: str) -> str:
    if _RULE.match(line) or _TABLE_RULE.match(line):
        return ""
    line = _LINE_MARKER.sub("", line)
    line = _IMAGE.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    line = _REFERENCE_LINK.sub(r"\1", line)
    line = _AUTOLINK.sub(r"\1", line)
    line = _TAG.sub("", line)
    line = _CODE.sub(r"\1", line)
    for _ in range(3):  # nested emphasis, such as ***both***
        line = _EMPHASIS.sub(r"\2", line)
        line = _SINGLE_EMPHASIS.sub(r"\2", line)
    line = line.replace("|", " ").replace("\\", "")
    return " ".join(line.split())


def _shortened(text: str) -> str:
    if len(text) <= TITLE_MAX_CHARS:
        return text
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0]
    if len(sentence) <= TITLE_MAX_CHARS and len(sentence.split()) >= 3:
        return sentence
    cut = text[:TITLE_MAX_CHARS]
    # At the last space (which leaves room for the ellipsis), or mid-word for a word longer than the title.
    cut = cut[: cut.rstrip().rfind(" ")] if " " in cut.strip() else cut[: TITLE_MAX_CHARS - 1]
    return cut.rstrip(" ,;:-–—") + "…"


def title_from_message(content: str) -> str:
    """The first line of `content` with something to say, stripped of markdown (headings, emphasis, code fences,
    links become their text), at most TITLE_MAX_CHARS characters, cut at a word boundary with "…"."""
    text = _FENCE.sub("", content)
    for line in text.splitlines():
        plain = _plain_line(line)
        if any(ch.isalnum() for ch in plain):
            return _shortened(plain)
    return UNTITLED

"""The generated title: plain text from the first message, never raw markdown, at most 60 characters."""

from __future__ import annotations

import pytest

from pam_hybrid.conversations.titles import TITLE_MAX_CHARS, UNTITLED, title_from_message


@pytest.mark.parametrize(("content", "title"), [
    ("What is the capital of France?", "What is the capital of France?"),
    ("## Result: **8** is _the_ answer", "Result: 8 is the answer"),
    ("# Plan\n\nMore text", "Plan"),
    ("Check [the docs](https://example.com/x) and ![a chart](c.png)", "Check the docs and a chart"),
    ("```python\nprint('hi')\n```", "print('hi')"),
    ("Why does `snake_case_name` fail with ***bold italic***?", "Why does snake_case_name fail with bold italic?"),
    ("> quoted\n- item", "quoted"),
    ("1. first step", "first step"),
    ("---\n| a | b |\n|---|---|", "a b"),
    ("<b>html</b> is <i>stripped</i>", "html is stripped"),
    ("   \n\n  ", UNTITLED),
    ("```\n```", UNTITLED),
])
def test_markdown_becomes_its_text(content: str, title: str) -> None:
    assert title_from_message(content) == title


def test_a_long_message_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    title = title_from_message("Explain step by step how to design a fault-tolerant queue for a payments system")
    assert title == "Explain step by step how to design a fault-tolerant queue…"
    assert len(title) <= TITLE_MAX_CHARS


def test_a_first_sentence_that_fits_is_the_title() -> None:
    long = "Please summarise this report. " + "It goes on and on about many things. " * 5
    assert title_from_message(long) == "Please summarise this report."


def test_one_endless_word_is_cut_mid_word() -> None:
    title = title_from_message("x" * 200)
    assert len(title) == TITLE_MAX_CHARS and title.endswith("…")


def test_whitespace_is_collapsed_and_only_the_first_line_counts() -> None:
    assert title_from_message("  hello   there \nsecond line") == "hello there"

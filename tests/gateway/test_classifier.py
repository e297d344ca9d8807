"""The classifier: simple questions go to the fast model, demanding ones to the strong one."""

from __future__ import annotations

import pytest

from pam_hybrid.gateway.classifier import classify


@pytest.mark.parametrize("text", ["What is the capital of France?", "hi", "Translate 'cat' to German", "2+2?"])
def test_short_factual_questions_are_simple(text: str) -> None:
    assert classify(text).route == "simple"


@pytest.mark.parametrize(
    "text",
    [
        "Explain step by step how to design a fault-tolerant message queue",
        "Compare and evaluate these two architectures for a payment system",
        "Why does this fail?\n```python\ndef f(x):\n    return x[0]\n```",
        "word " * 200,
    ],
)
def test_reasoning_code_and_long_queries_are_complex(text: str) -> None:
    result = classify(text)
    assert result.route == "complex" and result.score >= 2 and result.reasons


def test_reasons_name_the_signals() -> None:
    assert "code" in classify("```js\nconsole.log(1)\n```\nexplain this").reasons

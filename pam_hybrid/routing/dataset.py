"""The labelled queries the router learns from and is measured on (`data/queries.jsonl`, rubric in
docs/routing_rubric.md): one JSON object a line with the query, its earlier turns, its label and its split."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pam_hybrid.domain.routes import ROUTES, Route

QUERIES_PATH = Path(__file__).resolve().parent / "data" / "queries.jsonl"
Split = Literal["train", "held_out"]
SPLITS: tuple[Split, ...] = ("train", "held_out")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled query: `history` holds the earlier turns, alternating user and assistant, oldest first."""

    text: str
    label: Route
    history: tuple[str, ...] = ()
    split: Split = "train"
    id: str = ""
    domain: str = ""


def example_from(row: dict[str, object]) -> Example:
    label, split, history = row["label"], row.get("split", "train"), row.get("history") or []
    if label not in ROUTES or split not in SPLITS or not isinstance(history, list):
        raise ValueError(f"bad label, split or history in {row.get('id')!r}: {label!r}, {split!r}")
    return Example(
        text=str(row["text"]), label=label, history=tuple(str(turn) for turn in history),
        split=split, id=str(row.get("id", "")), domain=str(row.get("domain", "")),
    )


def load_examples(path: Path = QUERIES_PATH) -> list[Example]:
    with path.open(encoding="utf-8") as lines:
        return [example_from(json.loads(line)) for line in lines if line.strip()]


def in_split(examples: Iterable[Example], split: str) -> list[Example]:
    """The examples of a split ("train", "held_out"), or all of them for "all"."""
    return [example for example in examples if split == "all" or example.split == split]


def labels(examples: Sequence[Example]) -> list[bool]:
    """True for each example that needs the complex route."""
    return [example.label == "complex" for example in examples]

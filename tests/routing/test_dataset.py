"""The routing evaluation set keeps the shared contract: its keys, labels and splits, a held-out split worth
measuring on, follow-ups with their history, and a `why` that names a rule of docs/routing_rubric.md."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "pam_hybrid" / "routing" / "data" / "queries.jsonl"
RUBRIC = ROOT / "docs" / "routing_rubric.md"
KEYS = {"id", "text", "history", "label", "domain", "split", "why"}
RULE_HEADING = re.compile(r"^### ([CSHT]\d+): ", re.MULTILINE)
WHY_RULES = re.compile(r"^([CSHT]\d+(?:/[CSHT]\d+)*): \S")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    with QUERIES.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def test_every_row_has_exactly_the_contract_keys_and_values(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert set(row) == KEYS, row.get("id")
        assert re.fullmatch(r"q\d{4}", row["id"]), row["id"]
        assert row["label"] in {"simple", "complex"}, row["id"]
        assert row["split"] in {"train", "held_out"}, row["id"]
        assert isinstance(row["text"], str) and row["text"].strip(), row["id"]
        assert isinstance(row["domain"], str) and row["domain"], row["id"]
        assert isinstance(row["history"], list) and all(isinstance(turn, str) for turn in row["history"]), row["id"]
        assert len(row["history"]) % 2 == 0, f"{row['id']}: history must end with the assistant's turn"


def test_ids_are_unique_and_the_queries_are_not_repeated(rows: list[dict[str, Any]]) -> None:
    assert len(rows) >= 300
    assert len({row["id"] for row in rows}) == len(rows)
    queries = Counter((row["text"].strip().lower(), tuple(row["history"])) for row in rows)
    assert [query for query, count in queries.items() if count > 1] == []


def test_both_labels_are_well_represented(rows: list[dict[str, Any]]) -> None:
    complex_share = sum(row["label"] == "complex" for row in rows) / len(rows)
    assert 0.4 <= complex_share <= 0.6


def test_the_split_follows_the_rubric_rule(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        held_out = int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 4 == 0
        assert row["split"] == ("held_out" if held_out else "train"), row["id"]


def test_the_held_out_split_is_a_quarter_with_both_labels(rows: list[dict[str, Any]]) -> None:
    held_out = [row for row in rows if row["split"] == "held_out"]
    assert 0.2 <= len(held_out) / len(rows) <= 0.3
    assert {row["label"] for row in held_out} == {"simple", "complex"}
    assert any(row["history"] for row in held_out)


def test_there_are_enough_follow_ups_with_both_labels(rows: list[dict[str, Any]]) -> None:
    follow_ups = [row for row in rows if row["history"]]
    assert len(follow_ups) >= 40
    assert {row["label"] for row in follow_ups} == {"simple", "complex"}


def test_every_why_names_rules_of_the_rubric_that_agree_with_the_label(rows: list[dict[str, Any]]) -> None:
    rules = set(RULE_HEADING.findall(RUBRIC.read_text(encoding="utf-8")))
    assert {"C1", "S1", "H1", "T1"} <= rules
    for row in rows:
        match = WHY_RULES.match(row["why"])
        assert match, f"{row['id']}: why {row['why']!r} does not start with a rule id"
        named = match.group(1).split("/")
        assert set(named) <= rules, f"{row['id']}: {named} not all in the rubric"
        implied = {"C": "complex", "S": "simple", "H1": "complex", "H2": "simple"}
        deciding = named[-1]
        expected = implied.get(deciding[0], implied.get(deciding))
        if expected is not None:
            assert row["label"] == expected, f"{row['id']}: {deciding} implies {expected}"

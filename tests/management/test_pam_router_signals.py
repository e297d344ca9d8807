"""`pam_router train --with-signals`: users' signals in the database join the labelled train split; the command
reports the held-out figures of the models trained with and without them and each one's accuracy on the whole
labelled set, and keeps the current model when the one with signals is worse on held_out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from pam_hybrid.models import RoutingSignal
from pam_hybrid.routing.model import load_model
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db

COMPLEX = ("design a {} service with failover", "prove the {} theorem step by step",
           "write a 600 word essay about {} for teenagers, formal tone, at least 3 sources")
SIMPLE = ("what is {}", "define {}", "who invented {}")
TOPICS = ("billing", "radio", "printing", "banking", "compass", "steam", "vaccine", "telephone", "glass", "paper",
          "chess", "bicycle")
NEW_TOPICS = ("payroll", "weather", "parking", "email", "search", "ticketing", "chat", "maps", "music", "video",
              "photos", "news", "shopping", "travel", "recipes", "fitness", "banking app", "school")


@pytest.fixture
def queries(tmp_path: Path) -> Path:
    path = tmp_path / "queries.jsonl"
    rows = []
    for index, topic in enumerate(TOPICS):
        split = "held_out" if index % 4 == 0 else "train"
        for label, templates in (("complex", COMPLEX), ("simple", SIMPLE)):
            for number, template in enumerate(templates):
                rows.append({"id": f"{label[0]}{index}-{number}", "text": template.format(topic), "history": [],
                             "label": label, "domain": "test", "split": split, "why": "test"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def train(queries: Path, out: Path, *args: str) -> str:
    output = io.StringIO()
    call_command("pam_router", "train", "--queries", str(queries), "--out", str(out), *args, stdout=output)
    return output.getvalue()


def signals(kind: str, route: str, requested: str, texts: list[str]) -> None:
    user = user_create(username=f"user-{len(texts)}-{kind}")
    RoutingSignal.objects.bulk_create([
        RoutingSignal(user=user, kind=kind, route=route, route_requested=requested, text=text) for text in texts
    ])


def test_signals_join_training_and_both_models_are_reported(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    signals("escalated", "simple", "auto", [COMPLEX[0].format(topic) for topic in NEW_TOPICS[:6]])
    signals("thumbs_up", "simple", "auto", [SIMPLE[1].format(topic) for topic in NEW_TOPICS[:6]])
    signals("stopped_early", "simple", "auto", ["says nothing about the route"])
    printed = train(queries, out, "--with-signals")
    assert "12 routing signal examples" in printed
    assert "without signals" in printed and "with signals" in printed
    assert "labelled accuracy" in printed
    model = load_model(out)
    assert model.figures["extra_examples"] == 12 and model.figures["train_examples"] == 54 + 12
    assert model.figures["held_out"]["accuracy"] == 1.0


def test_without_the_flag_signals_are_left_out(queries: Path, tmp_path: Path) -> None:
    signals("escalated", "simple", "auto", [COMPLEX[0].format(topic) for topic in NEW_TOPICS[:6]])
    out = tmp_path / "model.json"
    printed = train(queries, out)
    assert "routing signal" not in printed
    assert load_model(out).figures["extra_examples"] == 0


def test_misleading_signals_are_reported_and_the_current_model_kept(queries: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    train(queries, out)
    before = out.read_text()
    # Users forcing the simple model on demanding queries (and liking it) teach the wrong boundary.
    wrong = [template.format(topic) for template in COMPLEX for topic in (*TOPICS, *NEW_TOPICS)]
    signals("forced_route", "simple", "simple", wrong)
    printed = train(queries, out, "--with-signals")
    assert "Kept the current model" in printed
    assert out.read_text() == before
    assert "without signals" in printed and "with signals" in printed

"""Training learns from a labelled set, picks its threshold on train only, and keeps the current model when the
new one is worse on held_out (models written to temporary paths: the shipped file is never touched)."""

from __future__ import annotations

import json
from pathlib import Path

from pam_hybrid.routing.dataset import Example, Split
from pam_hybrid.routing.model import Model, load_model
from pam_hybrid.routing.train import train

COMPLEX_TEMPLATES = ("design a {} service with failover", "prove the {} theorem step by step",
                     "write a 600 word essay about {} for teenagers, formal tone, at least 3 sources")
SIMPLE_TEMPLATES = ("what is {}", "define {}", "who invented {}")
TOPICS = ("billing", "radio", "printing", "banking", "compass", "steam", "vaccine", "telephone", "glass", "paper",
          "chess", "bicycle")


def _labelled() -> list[Example]:
    examples = []
    for index, topic in enumerate(TOPICS):
        split: Split = "held_out" if index % 4 == 0 else "train"
        for number, template in enumerate(COMPLEX_TEMPLATES):
            examples.append(Example(template.format(topic), "complex", split=split, id=f"c{index}-{number}"))
        for number, template in enumerate(SIMPLE_TEMPLATES):
            examples.append(Example(template.format(topic), "simple", split=split, id=f"s{index}-{number}"))
    return examples


def _always(route: str) -> Model:
    """A model that sends everything one way (a bias and nothing else)."""
    return Model(named={}, hashed={}, bias=8.0 if route == "complex" else -8.0, threshold=0.5, version=f"all-{route}")


def test_training_learns_a_small_labelled_set(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    outcome = train(_labelled(), current=None, out=out)
    assert outcome.written and out.exists()
    assert outcome.new_held_out.accuracy == 1.0 and outcome.new_held_out.total == 18
    saved = load_model(out)
    assert saved.version == outcome.new.version and saved.threshold == outcome.new.threshold
    assert saved.classify("design a payroll service with failover").route == "complex"
    assert saved.classify("who invented the kettle").route == "simple"
    assert saved.figures["held_out"]["accuracy"] == 1.0 and saved.figures["train_cv"]["n"] == 54


def test_the_current_model_is_kept_when_the_new_one_is_worse_on_held_out(tmp_path: Path) -> None:
    out = tmp_path / "model.json"
    perfect = train(_labelled(), current=None, out=out).new
    before = out.read_text()
    # Train on noise: labels flipped on the train split only, so the held-out split shows it.
    flipped = [Example(e.text, "simple" if e.label == "complex" else "complex", split=e.split, id=e.id)
               if e.split == "train" else e for e in _labelled()]
    outcome = train(flipped, current=perfect, out=out)
    assert outcome.kept_current and out.read_text() == before
    assert outcome.current_held_out is not None and outcome.new_held_out.accuracy < outcome.current_held_out.accuracy
    forced = train(flipped, current=perfect, out=out, force=True)
    assert forced.written and json.loads(out.read_text())["version"] == forced.new.version


def test_extra_examples_join_the_train_split_only(tmp_path: Path) -> None:
    extra = [Example("translate the contract into German keeping its legal force", "complex", split="held_out")]
    outcome = train(_labelled(), extra, current=_always("simple"), out=tmp_path / "model.json")
    assert outcome.new.figures["extra_examples"] == 1 and outcome.new.figures["train_examples"] == 55
    assert outcome.new_held_out.total == 18 and outcome.written



def test_a_current_model_of_other_feature_code_is_replaced_not_compared(tmp_path: Path) -> None:
    stale = Model(named={}, hashed={}, bias=8.0, threshold=0.5, version="stale", features_version=0)
    outcome = train(_labelled(), current=stale, out=tmp_path / "model.json")
    assert outcome.current_held_out is None and outcome.written

"""The router's learned model: logistic regression over the named features and hashed word uni/bigrams, read
from a small JSON file shipped with the code (`data/model.json`, written by `pam_router train`).

The shipped model is loaded once, when this module is imported (at start-up, not at the first message); scoring
is a few dictionary look-ups and one exponential.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from pam_hybrid.domain.routes import Classification, Route
from pam_hybrid.routing.features import FEATURES_VERSION, HASH_BITS, NAMED_FEATURES, Extracted, extract
from pam_hybrid.routing.reasons import reasons_for

MODEL_PATH = Path(__file__).resolve().parent / "data" / "model.json"


@dataclass(frozen=True, slots=True)
class Model:
    """Weights of a logistic regression: one per named feature, one per hashed bucket (zero ones left out)."""

    named: Mapping[str, float]
    hashed: Mapping[int, float]
    bias: float
    threshold: float
    """The default threshold, chosen by cross-validation on the train split."""
    version: str
    trained_at: str = ""
    hash_bits: int = HASH_BITS
    features_version: int = FEATURES_VERSION
    """The feature code it was trained on (see `features.FEATURES_VERSION`)."""
    figures: Mapping[str, Any] = field(default_factory=dict)
    """How it did when trained: train cross-validation and held-out figures (see `train`)."""

    def margin(self, extracted: Extracted) -> tuple[float, float, dict[str, float]]:
        """The named part of the log-odds, the hashed part, and each named feature's contribution."""
        named = self.named
        contributions = {name: named.get(name, 0.0) * value for name, value in extracted.named.items()}
        return sum(contributions.values()), sum(map(self.hashed.get, extracted.buckets, _ZEROS)), contributions

    def score(self, extracted: Extracted) -> float:
        named_part, hashed_part, _ = self.margin(extracted)
        return _sigmoid(self.bias + named_part + hashed_part)

    def classify(self, text: str, history: Sequence[str] = (), threshold: float | None = None) -> Classification:
        """Score `text` after `history`; complex when the score reaches the threshold (this model's by default)."""
        extracted = extract(text, history)
        named_part, hashed_part, contributions = self.margin(extracted)
        score = _sigmoid(self.bias + named_part + hashed_part)
        chosen = self.threshold if threshold is None else threshold
        route: Route = "complex" if score >= chosen else "simple"
        return Classification(
            route=route, score=score, threshold=chosen,
            reasons=reasons_for(route, contributions, extracted.named, hashed_part),
            features=extracted.named, model_version=self.version,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version, "trained_at": self.trained_at, "threshold": self.threshold,
            "hash_bits": self.hash_bits, "features_version": self.features_version, "bias": round(self.bias, 4),
            "named": {name: round(self.named[name], 4) for name in NAMED_FEATURES if self.named.get(name)},
            "hashed": {str(bucket): round(weight, 4) for bucket, weight in sorted(self.hashed.items())
                       if round(weight, 4)},
            "figures": dict(self.figures),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Model:
        if data.get("hash_bits", HASH_BITS) != HASH_BITS:
            raise ValueError(f"model hashes into 2^{data['hash_bits']} buckets, the features into 2^{HASH_BITS}")
        return cls(
            named={str(name): float(weight) for name, weight in data["named"].items()},
            hashed={int(bucket): float(weight) for bucket, weight in data["hashed"].items()},
            bias=float(data["bias"]), threshold=float(data["threshold"]), version=str(data["version"]),
            trained_at=str(data.get("trained_at", "")), figures=data.get("figures", {}),
            features_version=int(data.get("features_version", 1)),
        )

    @property
    def current_features(self) -> bool:
        """Whether it was trained on today's feature code (else its weights read the wrong features)."""
        return self.features_version == FEATURES_VERSION


_EDGE = 1e-6
_ZEROS = repeat(0.0)
"""The default of every hashed weight look-up (`map` stops at the shorter iterable)."""


def _sigmoid(margin: float) -> float:
    """The probability for a log-odds margin, kept strictly inside (0, 1): threshold 0 sends every query to the
    complex route and threshold 1 none."""
    margin = max(-30.0, min(30.0, margin))
    return min(1 - _EDGE, max(_EDGE, 1.0 / (1.0 + math.exp(-margin))))


def load_model(path: Path = MODEL_PATH) -> Model:
    return Model.from_json(json.loads(path.read_text()))


def save_model(model: Model, path: Path) -> None:
    path.write_text(json.dumps(model.to_json(), indent=1) + "\n")


SHIPPED = load_model()
"""The model shipped with the code, loaded once per process."""

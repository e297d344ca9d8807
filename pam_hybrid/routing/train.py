"""Training the router: logistic regression fitted by AdaGrad SGD (pure Python, deterministic) on the train split
only, with complex queries weighted up (missing one is the expensive mistake); regularisation and the default
threshold chosen by cross-validation on train, never on held_out.

`train` is the whole step `pam_router train` runs: extra examples (users' signals) join the train split, and the
new model is written only if it is not worse on held_out than the current one.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import product
from pathlib import Path
from typing import Any

from pam_hybrid.routing.dataset import Example, in_split, labels
from pam_hybrid.routing.evaluate import THRESHOLDS, Figures, figures_at, scores_of
from pam_hybrid.routing.features import HASH_SIZE, NAMED_FEATURES, extract
from pam_hybrid.routing.model import Model, save_model

RECALL_TARGET = 0.95
CV_RECALL_FLOOR = 0.97
"""The complex recall the threshold must reach in cross-validation on train: above the target, because a threshold
tuned to just meet it on train tends to fall short on queries it has not seen."""
L2_GRID = (0.1, 0.3, 1.0, 3.0)
COMPLEX_WEIGHT_GRID = (1.5, 2.5)
WORDS_L2_GRID = (1.0, 4.0, 12.0, 40.0)
"""How many times more the hashed word features are regularised than the named ones: thousands of sparse word
buckets overfit a few hundred examples more easily than the few dozen designed features."""
FOLDS = 5
EPOCHS = 40
LEARNING_RATE = 0.3
SEED = 15
_NAMED_INDEX = {name: index for index, name in enumerate(NAMED_FEATURES)}
_DIMENSIONS = len(NAMED_FEATURES) + HASH_SIZE

Vector = list[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Settings:
    l2: float
    complex_weight: float
    words_l2: float = 1.0


def vectorise(example: Example) -> Vector:
    extracted = extract(example.text, example.history)
    vector = [(_NAMED_INDEX[name], value) for name, value in extracted.named.items()]
    vector.extend((len(NAMED_FEATURES) + bucket, 1.0) for bucket in extracted.buckets)
    return vector


def _sigmoid(margin: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, margin))))


def fit(vectors: Sequence[Vector], truth: Sequence[bool], settings: Settings) -> tuple[list[float], float]:
    """Weights and bias minimising the class-weighted log loss plus l2/2·|w|² (the penalty spread over the
    examples a feature occurs in, so each epoch applies it once)."""
    weights, squares = [0.0] * _DIMENSIONS, [1e-8] * _DIMENSIONS
    bias, bias_square = 0.0, 1e-8
    occurrences = [0] * _DIMENSIONS
    for vector in vectors:
        for index, _ in vector:
            occurrences[index] += 1
    named_count = len(NAMED_FEATURES)
    penalty = [settings.l2 * (1.0 if index < named_count else settings.words_l2) / max(count, 1)
               for index, count in enumerate(occurrences)]
    order = list(range(len(vectors)))
    rng = random.Random(SEED)
    for _ in range(EPOCHS):
        rng.shuffle(order)
        for position in order:
            vector, is_complex = vectors[position], truth[position]
            margin = bias + sum(weights[index] * value for index, value in vector)
            error = (_sigmoid(margin) - is_complex) * (settings.complex_weight if is_complex else 1.0)
            for index, value in vector:
                gradient = error * value + penalty[index] * weights[index]
                squares[index] += gradient * gradient
                weights[index] -= LEARNING_RATE * gradient / math.sqrt(squares[index])
            bias_square += error * error
            bias -= LEARNING_RATE * error / math.sqrt(bias_square)
    return weights, bias


def _model(weights: Sequence[float], bias: float, threshold: float, figures: dict[str, Any]) -> Model:
    named = {name: weights[index] for name, index in _NAMED_INDEX.items() if round(weights[index], 4)}
    offset = len(NAMED_FEATURES)
    hashed = {bucket: weights[offset + bucket] for bucket in range(HASH_SIZE) if round(weights[offset + bucket], 4)}
    digest = hashlib.sha256(json.dumps([sorted(named.items()), sorted(hashed.items()), bias]).encode()).hexdigest()
    trained_at = datetime.now(UTC)
    return Model(named=named, hashed=hashed, bias=bias, threshold=threshold,
                 version=f"{trained_at:%Y%m%d}-{digest[:8]}", trained_at=trained_at.isoformat(timespec="seconds"),
                 figures=figures)


def _best_threshold(truth: Sequence[bool], scores: Sequence[float]) -> Figures:
    """The threshold with the best accuracy among those reaching CV_RECALL_FLOOR (the best recall if none does);
    ties go to the higher threshold (the cheaper one)."""
    candidates = [figures_at(truth, scores, threshold) for threshold in THRESHOLDS]
    return max(candidates, key=lambda f: (f.complex_recall >= CV_RECALL_FLOOR,
                                          f.accuracy if f.complex_recall >= CV_RECALL_FLOOR else f.complex_recall,
                                          f.threshold))


def _out_of_fold_scores(vectors: Sequence[Vector], truth: Sequence[bool], settings: Settings) -> list[float]:
    scores = [0.0] * len(vectors)
    for fold in range(FOLDS):
        inside = [index for index in range(len(vectors)) if index % FOLDS != fold]
        weights, bias = fit([vectors[index] for index in inside], [truth[index] for index in inside], settings)
        for index in range(fold, len(vectors), FOLDS):
            scores[index] = _sigmoid(bias + sum(weights[feature] * value for feature, value in vectors[index]))
    return scores


def cross_validate(examples: Sequence[Example]) -> tuple[Settings, Figures]:
    """The regularisation (of named and of word features) and complex weight with the best cross-validated
    figures on `examples`, and those figures at the threshold chosen for them."""
    ordered = sorted(examples, key=lambda example: example.id)
    vectors, truth = [vectorise(example) for example in ordered], labels(ordered)
    results = []
    for l2, complex_weight, words_l2 in product(L2_GRID, COMPLEX_WEIGHT_GRID, WORDS_L2_GRID):
        settings = Settings(l2, complex_weight, words_l2)
        best = _best_threshold(truth, _out_of_fold_scores(vectors, truth, settings))
        results.append((best.complex_recall >= CV_RECALL_FLOOR, best.accuracy, best.complex_recall, l2, settings,
                        best))
    chosen = max(results, key=lambda result: result[:4])
    return chosen[4], chosen[5]


def fit_model(train_examples: Sequence[Example]) -> Model:
    """A model fitted on `train_examples` with the settings and threshold cross-validation chose."""
    settings, cv = cross_validate(train_examples)
    weights, bias = fit([vectorise(example) for example in train_examples], labels(train_examples), settings)
    figures = {"train_cv": cv.summary(), "l2": settings.l2, "complex_weight": settings.complex_weight,
               "words_l2": settings.words_l2,
               "train_examples": len(train_examples)}
    return _model(weights, bias, cv.threshold, figures)


def held_out_figures(model: Model, held_out: Sequence[Example]) -> Figures:
    return figures_at(labels(held_out), scores_of(model, held_out), model.threshold)


def worse(new: Figures, current: Figures) -> bool:
    """Whether a new model's held-out figures are worse than the current one's: lower accuracy, or a complex
    recall lower than the current one's where that drops it below RECALL_TARGET."""
    return new.accuracy < current.accuracy or new.complex_recall < min(current.complex_recall, RECALL_TARGET)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `train` did: the new model, its held-out figures beside the current model's (None when there is none,
    or it was trained on other feature code and cannot be compared), and whether it was written."""

    new: Model
    new_held_out: Figures
    current: Model | None
    current_held_out: Figures | None
    written: bool

    @property
    def kept_current(self) -> bool:
        return not self.written


def train(labelled: Sequence[Example], extra: Iterable[Example] = (), *, current: Model | None, out: Path,
          force: bool = False) -> Outcome:
    """Fit a new model on the labelled train split plus `extra` (never held out), measure it and `current` on the
    labelled held_out split, and write it to `out` unless it is worse than `current` there (`force`: write anyway;
    a current model trained on other feature code is replaced)."""
    extra = [Example(e.text, e.label, e.history, "train", e.id, e.domain) for e in extra]
    train_examples = [*in_split(labelled, "train"), *extra]
    held_out = in_split(labelled, "held_out")
    new = fit_model(train_examples)
    new_figures = held_out_figures(new, held_out)
    new = Model(named=new.named, hashed=new.hashed, bias=new.bias, threshold=new.threshold, version=new.version,
                trained_at=new.trained_at,
                figures={**new.figures, "extra_examples": len(extra), "held_out": new_figures.summary()})
    comparable = current is not None and current.current_features
    current_figures = held_out_figures(current, held_out) if current is not None and comparable else None
    write = force or current_figures is None or not worse(new_figures, current_figures)
    if write:
        save_model(new, out)
    return Outcome(new=new, new_held_out=new_figures, current=current, current_held_out=current_figures,
                   written=write)

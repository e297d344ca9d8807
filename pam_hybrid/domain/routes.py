"""The routes a message can take: `simple` (the fast, cheap model) or `complex` (the stronger one), and the
choice a client sends, which adds `auto` (the classifier decides), and the router's decision. Defined here once for
the whole app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Route = Literal["simple", "complex"]
RouteChoice = Literal["auto", "simple", "complex"]
ROUTES: tuple[Route, ...] = get_args(Route)
ROUTE_CHOICES: tuple[RouteChoice, ...] = get_args(RouteChoice)


@dataclass(frozen=True, slots=True)
class Classification:
    """The router's decision for one query: the route, the probability that it needs the stronger model (`score`),
    the threshold it was compared with, the strongest reasons in plain words (shown to staff), the named feature
    values it read (JSON-safe) and the version of the model that scored it."""

    route: Route
    score: float
    threshold: float
    reasons: tuple[str, ...]
    features: Mapping[str, float]
    model_version: str

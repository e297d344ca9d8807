"""The routes a message can take: `simple` (the fast, cheap model) or `complex` (the stronger one), and the
choice a client sends, which adds `auto` (the classifier decides). Defined here once for the whole app."""

from __future__ import annotations

from typing import Literal, get_args

Route = Literal["simple", "complex"]
RouteChoice = Literal["auto", "simple", "complex"]
ROUTES: tuple[Route, ...] = get_args(Route)
ROUTE_CHOICES: tuple[RouteChoice, ...] = get_args(RouteChoice)

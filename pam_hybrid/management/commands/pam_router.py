"""pam_router: measure the router (evaluate), retrain it (train) and ask what another threshold would have done to
logged traffic (audit)."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from rich.console import Console
from rich.table import Table

from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.routes import Route
from pam_hybrid.gateway.routes import ROUTE_PROVIDERS, route_model
from pam_hybrid.management.help import RawHelpCommand
from pam_hybrid.pricing import refresh_overrides
from pam_hybrid.routing.audit import audit
from pam_hybrid.routing.dataset import QUERIES_PATH, Example, in_split, load_examples
from pam_hybrid.routing.evaluate import OUTPUT_TOKENS, THRESHOLDS, Figures, RouteModels, evaluate
from pam_hybrid.routing.model import MODEL_PATH, SHIPPED, Model, load_model
from pam_hybrid.routing.signals import stored_signal_examples, with_and_without
from pam_hybrid.routing.train import RECALL_TARGET, Outcome, train

TABLE_WIDTH = 160
ACCURACY_TARGET = 0.90

HELP = """\
The router decides each `auto` message's route: a logistic regression over named features and hashed words
(pam_hybrid/routing/), shipped as pam_hybrid/routing/data/model.json and trained on the labelled queries in
pam_hybrid/routing/data/queries.jsonl (rubric: docs/routing_rubric.md).

  evaluate  accuracy, confusion matrix, complex recall and estimated cost per 1,000 queries at each threshold
            (0.05 to 0.95) on a split, the configured threshold marked, then the headline figures at it
  train     fit a new model on the train split (cross-validation on train picks regularisation and threshold),
            print its figures beside the current model's, and write it only if it is not worse on held_out;
            --with-signals adds users' routing signals (pam_hybrid/routing/signals.py) to the train split and
            prints the models with and without them on held_out and on the whole labelled set
  audit     re-classify the user messages answered in the last N days at a threshold, without calling any
            model: how many would change route, and the cost difference at the other route's model
"""



def _threshold(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError("a threshold is between 0 and 1")
    return number


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _money(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


class Command(RawHelpCommand):
    help = HELP
    color = False

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        evaluate_parser = actions.add_parser("evaluate", help="figures per threshold on a split")
        evaluate_parser.add_argument("--split", choices=("held_out", "train", "all"), default="held_out")
        evaluate_parser.add_argument("--threshold", type=_threshold, help="default: PAM_ROUTER_THRESHOLD")
        evaluate_parser.add_argument("--model", type=Path, default=MODEL_PATH, help="model file to evaluate")
        evaluate_parser.add_argument("--queries", type=Path, default=QUERIES_PATH, help="labelled queries")
        train_parser = actions.add_parser("train", help="fit a new model; keep the current one if it is better")
        train_parser.add_argument("--out", type=Path, default=MODEL_PATH, help="model file to write")
        train_parser.add_argument("--force", action="store_true", help="write the new model even if it is worse")
        train_parser.add_argument("--queries", type=Path, default=QUERIES_PATH, help="labelled queries")
        train_parser.add_argument("--with-signals", action="store_true",
                                  help="also learn from users' routing signals (escalations, forced routes, thumbs)")
        audit_parser = actions.add_parser("audit", help="what another threshold would have done to logged traffic")
        audit_parser.add_argument("--days", type=int, default=7)
        audit_parser.add_argument("--threshold", type=_threshold, help="default: PAM_ROUTER_THRESHOLD")

    def handle(self, *args: Any, **options: Any) -> None:
        buffer = io.StringIO()
        self.console = Console(file=buffer, width=TABLE_WIDTH, highlight=False, soft_wrap=True)
        refresh_overrides()  # price as the server would: at the staff overrides in force
        try:
            if options["action"] == "evaluate":
                self.evaluate(options)
            elif options["action"] == "train":
                self.train(options)
            else:
                self.audit(options)
        finally:
            self.stdout.write(buffer.getvalue(), ending="")

    def _configured(self, model: Model, threshold: float | None) -> float:
        if threshold is not None:
            return threshold
        configured = pam_settings().router_threshold
        return model.threshold if configured is None else configured

    def _route_models(self) -> RouteModels:
        settings = pam_settings()
        return RouteModels(providers=ROUTE_PROVIDERS, models={route: route_model(route, settings)
                                                               for route in ROUTE_PROVIDERS})

    def evaluate(self, options: dict[str, Any]) -> None:
        model = load_model(options["model"])
        examples = in_split(load_examples(options["queries"]), options["split"])
        if not examples:
            raise CommandError(f"no labelled queries in split {options['split']}")
        chosen = self._configured(model, options["threshold"])
        routes = self._route_models()
        thresholds = sorted({*THRESHOLDS, chosen})
        rows = evaluate(model, examples, thresholds, routes)
        self.console.print(
            f"Model {model.version} (trained {model.trained_at or 'unknown'}) on {len(examples)} {options['split']} "
            f"queries; threshold in use {chosen:.2f} (model's default {model.threshold:.2f}).\n"
            f"Cost assumptions: input = the query and its earlier turns as providers/tokens.py estimates them (no "
            f"system prompt or tools); output = {OUTPUT_TOKENS['simple']} tokens on the simple route "
            f"({routes.models['simple']}), {OUTPUT_TOKENS['complex']} on the complex route "
            f"({routes.models['complex']}); today's prices (pricing.call_cost)."
        )
        self.console.print(self._dial_table(rows, chosen))
        headline = next(row for row in rows if row.threshold == chosen)
        self._headline(headline)

    def _dial_table(self, rows: list[Figures], chosen: float) -> Table:
        table = Table(title="The dial: a query goes complex when its score reaches the threshold")
        for name in ("threshold", "accuracy", "complex recall", "complex hit", "missed complex", "over-routed",
                     "simple hit", "sent complex", "USD / 1,000 queries"):
            table.add_column(name, justify="right")
        for row in rows:
            mark = " *" if row.threshold == chosen else ""
            table.add_row(
                f"{row.threshold:.2f}{mark}", _percent(row.accuracy), _percent(row.complex_recall),
                str(row.complex_hit), str(row.missed_complex), str(row.over_routed), str(row.simple_hit),
                _percent(row.complex_share), _money(row.cost_per_1000),
            )
        table.caption = "* the threshold in use. Missed complex: a complex query sent to the cheap model."
        return table

    def _headline(self, row: Figures) -> None:
        matrix = Table(title=f"Confusion matrix at {row.threshold:.2f}")
        matrix.add_column("labelled \\ routed")
        matrix.add_column("complex", justify="right")
        matrix.add_column("simple", justify="right")
        matrix.add_row("complex", str(row.complex_hit), str(row.missed_complex))
        matrix.add_row("simple", str(row.over_routed), str(row.simple_hit))
        self.console.print(matrix)
        accuracy_met = "met" if row.accuracy >= ACCURACY_TARGET else "NOT met"
        recall_met = "met" if row.complex_recall >= RECALL_TARGET else "NOT met"
        self.console.print(
            f"At {row.threshold:.2f}: accuracy {_percent(row.accuracy)} "
            f"(target {ACCURACY_TARGET:.0%}: {accuracy_met}), "
            f"complex recall {_percent(row.complex_recall)} (target {RECALL_TARGET:.0%}: {recall_met}), "
            f"estimated {_money(row.cost_per_1000)} per 1,000 queries, {row.total} queries."
        )

    def extra_examples(self, options: dict[str, Any]) -> list[Example]:
        """Examples beyond the labelled train split: users' routing signals, with --with-signals."""
        if not options.get("with_signals"):
            return []
        examples = stored_signal_examples()
        self.console.print(f"{len(examples)} routing signal examples join the labelled train split.")
        return examples

    def _signals_table(self, labelled: list[Example], outcome: Outcome) -> Table:
        """The model trained with signals beside one trained without them."""
        table = Table(title="What the signals changed")
        for name in ("model", "threshold", "held-out accuracy", "held-out complex recall", "held-out missed complex",
                     "labelled accuracy", "labelled complex recall"):
            table.add_column(name, justify="right")
        for row in with_and_without(labelled, outcome.new, outcome.new.figures.get("extra_examples", 0)):
            table.add_row(row.name, f"{row.held_out.threshold:.2f}", _percent(row.held_out.accuracy),
                          _percent(row.held_out.complex_recall), str(row.held_out.missed_complex),
                          _percent(row.labelled.accuracy), _percent(row.labelled.complex_recall))
        table.caption = "Labelled: the whole labelled set (train and held_out), at each model's threshold."
        return table

    def train(self, options: dict[str, Any]) -> None:
        out: Path = options["out"]
        current = load_model(out) if out.exists() else None
        labelled = load_examples(options["queries"])
        outcome = train(labelled, self.extra_examples(options), current=current, out=out, force=options["force"])
        table = Table(title="New model against the current one")
        for name in ("model", "train CV accuracy", "train CV complex recall", "threshold", "held-out accuracy",
                     "held-out complex recall", "held-out missed complex"):
            table.add_column(name, justify="right")
        models = [("new " + outcome.new.version, outcome.new, outcome.new_held_out)]
        if outcome.current is not None and outcome.current_held_out is not None:
            models.append(("current " + outcome.current.version, outcome.current, outcome.current_held_out))
        for name, model, held_out in models:
            cv = model.figures.get("train_cv", {})
            table.add_row(
                name, _percent(cv["accuracy"]) if cv else "—", _percent(cv["complex_recall"]) if cv else "—",
                f"{model.threshold:.2f}", _percent(held_out.accuracy), _percent(held_out.complex_recall),
                str(held_out.missed_complex),
            )
        self.console.print(table)
        if options.get("with_signals"):
            self.console.print(self._signals_table(labelled, outcome))
        extra = outcome.new.figures.get("extra_examples", 0)
        self.console.print(f"Trained on {outcome.new.figures['train_examples']} examples ({extra} beyond the "
                           f"labelled train split); l2 {outcome.new.figures['l2']}, complex weight "
                           f"{outcome.new.figures['complex_weight']}.")
        if current is not None and outcome.current_held_out is None:
            self.console.print(f"The current model {current.version} was trained on other feature code "
                               f"(version {current.features_version}): it cannot be compared, and is replaced.")
        if outcome.written:
            forced = " (--force)" if options["force"] and current is not None else ""
            self.console.print(f"Wrote the new model to {out}{forced}.")
        else:
            self.console.print(f"Kept the current model: the new one is worse on held_out. {out} is unchanged "
                               "(--force writes it anyway).")

    def audit(self, options: dict[str, Any]) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        chosen = self._configured(SHIPPED, options["threshold"])
        since = datetime.now(UTC) - timedelta(days=options["days"])
        models: dict[Route, str] = dict(self._route_models().models)
        result = audit(since=since, threshold=chosen, model=SHIPPED, route_models=models)
        table = Table(title=f"Answers of the last {options['days']} days re-classified at {chosen:.2f} "
                            f"(model {SHIPPED.version})")
        table.add_column("what")
        table.add_column("answers", justify="right")
        table.add_row("re-classified", str(result.examined))
        table.add_row("… of which the route request was not recorded (may have been forced)",
                      str(result.request_unrecorded))
        table.add_row("left out: route forced by the user", str(result.forced))
        table.add_row("would go simple → complex", str(result.to_complex))
        table.add_row("would go complex → simple", str(result.to_simple))
        table.add_row("changed, with a cost unknown (left out of the sums)", str(result.unknown_cost))
        self.console.print(table)
        self.console.print(
            f"Changed answers cost {_money(result.cost_then)} as charged; their recorded tokens at the other "
            f"route's model ({models['simple']} / {models['complex']}) would cost {_money(result.cost_after)}: "
            f"a difference of {'+' if result.difference >= 0 else '-'}${abs(result.difference):.8f}."
        )

"""What the windowed rules' and the join rules' halves of `Evaluator` use of it: the filters
keep these too, so `Evaluator` defines them and the halves only declare them, once, here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alert_engine.alerts import Alert, AlertWindow
    from alert_engine.conditions.expressions import Activation
    from alert_engine.events import Event, Stream
    from alert_engine.rules.ruleset import Rule, Ruleset
    from alert_engine.stats import Stats


class EvaluatorParts:
    """Declared for the type checker; nothing at run time."""

    if TYPE_CHECKING:
        stats: Stats
        clock: Callable[[], datetime]
        _ruleset: Ruleset

        @property
        def ruleset(self) -> Ruleset: ...

        def activation(self, stream: Stream, event: Event) -> Activation: ...

        def _alert(
            self,
            rule: Rule,
            stream: Stream,
            key: str,
            fields: dict[str, Any],
            values: dict[str, object],
            event: Event,
            fired_at: datetime,
            activation: Activation,
            id_key: str | None = None,
            window: AlertWindow | None = None,
        ) -> Alert: ...

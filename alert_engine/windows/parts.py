"""What the windowed rules' and the join rules' halves of `Evaluator` use of it, and what the
modules of the windowed half use of each other: declared once, here, for the type checker.

`Evaluator` defines the filter side (`activation`, `_alert`); the windowed half is put together
from `windows.folding` (a batch's events into partial states), `windows.firing` (partial states
into windows, conditions, alerts), `windows.receiving` (a `windows` record applied once),
`windows.watermarks` (how far event time has got) and `windows.evaluation` (the entry points)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faust.windows import HoppingWindow

    from alert_engine.alerts import Alert, AlertWindow
    from alert_engine.conditions.expressions import Activation
    from alert_engine.events import Event, Stream
    from alert_engine.rules.ruleset import Rule, Ruleset
    from alert_engine.stats import Stats
    from alert_engine.windows.counting import (
        Counting,
        Partial,
        Partials,
        Validated,
        WindowPartial,
    )
    from alert_engine.windows.definitions import WindowRange
    from alert_engine.windows.families import Family, PaneGroup
    from alert_engine.windows.hop import Inputs, Regroup
    from alert_engine.windows.store import WindowStore
    from alert_engine.windows.watermarks import Watermark


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


class WindowedParts(EvaluatorParts):
    """The windowed half's state and the methods its modules call across."""

    if TYPE_CHECKING:
        _families: dict[Stream, dict[str, tuple[Family, ...]]]
        _panes: dict[Stream, dict[str, tuple[PaneGroup, ...]]]
        _counted_ids: dict[Stream, dict[str, dict[str, Family | PaneGroup]]]
        _dedupe_spans: dict[Stream, float]
        inputs_version: str
        idle_seconds: float
        input_partitions: int
        watermarks: dict[tuple[Stream, int], Watermark]
        _ranges: dict[tuple[HoppingWindow, float], list[WindowRange]]
        _pane_closes: dict[tuple[str, float], float]

        def inputs(self, families: tuple[Family, ...], activation: Activation) -> Inputs | None: ...

        def fold(
            self,
            stream: Stream,
            grouping: str,
            inputs: Inputs,
            timestamp: float,
            mark: float,
            into: Partials,
            ref: Any,
        ) -> None: ...

        def _window_ranges(self, window: HoppingWindow, timestamp: float) -> list[WindowRange]: ...

        def _in_windows(self, partials: Iterable[Partial | Counting]) -> list[WindowPartial]: ...

        def merge(
            self,
            stream: Stream,
            grouping: str,
            key: str,
            partials: Iterable[WindowPartial],
            store: WindowStore,
            watermark: float,
            event_of: Callable[[Any], Validated],
        ) -> list[Alert]: ...

        def windowed(
            self,
            group: Regroup,
            event: Event,
            store: WindowStore,
            *,
            partition: int = 0,
            activation: Activation | None = None,
            source: int | None = None,
            watermark: float | None = None,
        ) -> list[Alert]: ...

        def count_in_windows(
            self,
            group: Regroup,
            inputs: Inputs | None,
            timestamp: float,
            store: WindowStore,
            *,
            partition: int,
            event: Callable[[], Validated],
            source: int | None = None,
            watermark: float | None = None,
        ) -> list[Alert]: ...

        def _join(
            self, group: Regroup, event: Event, store: WindowStore, activation: Activation
        ) -> list[Alert]: ...

        def _watermark(self, stream: Stream, partition: int) -> Watermark: ...

        def _advance(
            self, stream: Stream, partition: int, timestamp: float, source: int | None = None
        ) -> float: ...

"""Join rules: a rating and its interaction, in either order, within `within` of each other.

Both travel to the windows partition of their interaction id (grouping `join:interaction`),
where each waits for its partner in the window state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alert_engine.alerts import Alert
from alert_engine.conditions.expressions import Activation, EvaluationError
from alert_engine.events import Event, Rating, Stream
from alert_engine.rules.ruleset import Rule, Ruleset
from alert_engine.stats import Stats
from alert_engine.windows.definitions import window_ranges
from alert_engine.windows.firing import BuildAlert
from alert_engine.windows.hop import Regroup
from alert_engine.windows.store import WindowStore, state_key

# The grouping of ratings and interactions re-keyed by interaction id for join rules.
JOIN_GROUPING = "join:interaction"
# Events kept per interaction id and side: bounds the state of an id that is reused by mistake.
MAX_JOIN_WAITING = 100


@dataclass(frozen=True, slots=True)
class Joins:
    """The join rules of one ruleset (replaced by a reload); the filter side gives an event's
    activation and builds the alerts."""

    ruleset: Ruleset
    stats: Stats
    clock: Callable[[], datetime]
    activation: Callable[[Stream, Event], Activation]
    build_alert: BuildAlert

    def key(self, stream: Stream, activation: Activation) -> str | None:
        """The interaction id, if a join rule may need this event: every interaction, and the
        ratings that meet some join rule's own condition."""
        if not self.ruleset.joins:
            return None
        if stream is Stream.INTERACTIONS:
            return str(activation.fields["id"])
        interaction_id = activation.fields.get("interaction_id")
        if interaction_id is None:
            return None
        return str(interaction_id) if self._joining_rules(activation) else None

    def _joining_rules(self, activation: Activation) -> list[Rule]:
        found = []
        for rule in self.ruleset.joins:
            try:
                if rule.condition.evaluate(activation):
                    found.append(rule)
            except EvaluationError:
                self.stats.rule_misses[rule.name] += 1
        return found

    def join(
        self, group: Regroup, event: Event, store: WindowStore, activation: Activation
    ) -> list[Alert]:
        """Keep the event for its partner (up to the longest `within` of the join rules) and
        pair it with partners already kept: a rating with its interaction, either order."""
        shape = self.ruleset.join_shape
        if shape is None:
            return []
        window = store.window(shape)
        timestamp = event.time.timestamp()
        skey = state_key(JOIN_GROUPING, group.key)
        own = window_ranges(window, timestamp)[0]
        state = store.get(shape, skey, own) or {"ratings": [], "interactions": []}
        fields = event.model_dump(mode="json")
        side = "ratings" if group.stream is Stream.RATINGS else "interactions"
        kept: dict[str, Any]
        if group.stream is Stream.RATINGS:
            rules = [rule.name for rule in self._joining_rules(activation)]
            if not rules:
                return []
            kept = {"event": fields, "time": timestamp, "rules": rules}
        else:
            kept = {"event": fields, "time": timestamp}
        waiting = state[side]
        if len(waiting) < MAX_JOIN_WAITING and all(
            item["event"]["id"] != event.id for item in waiting
        ):
            state[side] = [*state[side], kept]
            store.set(shape, skey, own, state)
        nearby: list[dict[str, Any]] = []
        for moment in (timestamp - window.size, timestamp, timestamp + window.size):
            found = store.get(shape, skey, window_ranges(window, moment)[0])
            if found is not None:
                nearby.extend(found["interactions" if side == "ratings" else "ratings"])
        pairs = (
            [(kept, other) for other in nearby]
            if side == "ratings"
            else [(other, kept) for other in nearby]
        )
        alerts = []
        for rating, interaction in pairs:
            for name in rating["rules"]:
                alert = self._paired(name, rating, interaction)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def _paired(
        self, name: str, rating: dict[str, Any], interaction: dict[str, Any]
    ) -> Alert | None:
        rule = self.ruleset.get(name)
        if rule is None or rule.join_condition is None or rule.spec.join is None:
            return None  # the rule went away in a reload
        if abs(rating["time"] - interaction["time"]) > rule.spec.join.within:
            return None
        joined = Activation({"interaction": interaction["event"]}, self.ruleset.window_functions)
        try:
            if not rule.join_condition.evaluate(joined):
                return None
        except EvaluationError:
            self.stats.rule_misses[rule.name] += 1
            return None
        self.stats.rule_matches[rule.name] += 1
        event = Rating.model_validate(rating["event"])
        activation = self.activation(Stream.RATINGS, event)
        values = {**rule.condition.values(activation), "interaction": interaction["event"]}
        return self.build_alert(
            rule,
            Stream.RATINGS,
            event.id,
            rating["event"],
            values,
            event,
            self.clock(),
            activation,
            None,
            None,
        )

"""How a ruleset's windowed rules are counted: their families and pane groups per stream and
grouping, what names them on the windows topic, and the version of the inputs computed for them.

Built once per ruleset (`Layout.of`) and replaced whole by a reload, so that no part of the
windowed half sees one ruleset's families with another's pane groups."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from alert_engine.events import Stream
from alert_engine.rules.ruleset import Ruleset
from alert_engine.windows.duplicates import dedupe_spans
from alert_engine.windows.families import Family, PaneGroup, families_of, pane_groups_of


@dataclass(frozen=True)
class Layout:
    ruleset: Ruleset
    families: dict[Stream, dict[str, tuple[Family, ...]]]
    panes: dict[Stream, dict[str, tuple[PaneGroup, ...]]]
    # What a partial state on the windows topic names: a family, or a pane group.
    counted_ids: dict[Stream, dict[str, dict[str, Family | PaneGroup]]]
    # Per stream, how long after an event its id counts as seen (`windows.duplicates`).
    dedupe_spans: dict[Stream, float]
    # Names the ruleset and the layout of the inputs `Evaluator.regroup` computes for it: a
    # windows record is counted from its inputs only if they were computed for the same layout
    # (not by another ruleset, nor by another version of this code grouping rules otherwise).
    inputs_version: str

    @classmethod
    def of(cls, ruleset: Ruleset) -> Layout:
        windows = ruleset.windows()
        families = {
            stream: {grouping: families_of(rules, windows) for grouping, rules in groupings.items()}
            for stream, groupings in ruleset.windowed.items()
        }
        panes = {
            stream: {grouping: pane_groups_of(families) for grouping, families in groupings.items()}
            for stream, groupings in families.items()
        }
        counted_ids: dict[Stream, dict[str, dict[str, Family | PaneGroup]]] = {
            stream: {
                grouping: {
                    **{family.id: family for family in by_grouping},
                    **{group.id: group for group in panes[stream][grouping]},
                }
                for grouping, by_grouping in groupings.items()
            }
            for stream, groupings in families.items()
        }
        layout = orjson.dumps(
            [
                [stream.value, grouping, [family.folds for family in by_grouping]]
                for stream, groupings in families.items()
                for grouping, by_grouping in groupings.items()
            ]
        )
        return cls(
            ruleset,
            families,
            panes,
            counted_ids,
            dedupe_spans(families),
            f"{ruleset.version}-{hashlib.sha256(layout).hexdigest()[:12]}",
        )

"""Windowed rules and joins, one concept per module.

- `definitions`: durations (`15m`, `1h`, `7d`) and window shapes (tumbling, hopping, grace).
- `aggregations`: the named aggregates (`count()`, `avg(rating)`, ...), compiled once at load and
  updated incrementally, one step per event.
- `families`: rules that share one state per window, pane groups, the cohorts a reload leaves.
- `layout`: a ruleset's families and pane groups per stream and grouping, built once per ruleset.
- `counting`: a batch's partial states, the buckets a batch touches, which fired windows alert.
- `folding`: a batch's events counted into partial states (the input agent's share).
- `hop`: the `windows` topic's records, and which partition a group key lives on.
- `receiving`: a `windows` record applied to the window state exactly once.
- `duplicates`: the same event twice counts once.
- `firing`: partial states merged into windows, conditions checked, alerts built.
- `watermarks`: how far event time has got, per input partition; when a window takes no more.
- `state`: the window state record (typed), and the JSON its changelog holds.
- `store`: where window state lives: one Faust table live (an entry per group key), dicts in a
  replay.
- `inspection`: what a rule has counted, for `rules test`.
- `joins`: a rating and its interaction.
- `evaluation`: `WindowedRules`, the windowed half of `Evaluator`, put together from the above;
  of the filter side it takes an event's activation and the building of an alert, as callables.
"""

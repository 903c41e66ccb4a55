"""Windowed rules: window definitions, aggregations and the state store, each in its own module.

- `definitions`: durations (`15m`, `1h`, `7d`) and window shapes (tumbling, hopping, grace).
- `aggregations`: the named aggregates (`count()`, `avg(rating)`, ...), compiled once at load and
  updated incrementally, one step per event.
- `store`: where window state lives: one Faust table live (an entry per group key), a dict
  in a replay.
"""

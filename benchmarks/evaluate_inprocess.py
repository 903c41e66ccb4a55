"""Rule evaluation alone, in one process, without Kafka: the ceiling the worker cannot beat.

    .venv/bin/python benchmarks/evaluate_inprocess.py [--events 3000] [--rules 10,100,1000]
                                                      [--repeat 1] [--default-gc]

Runs the same generated rule sets and events as rules_throughput.py (`shipped` in `--rules`: the
rules of `rules/` instead) three ways: through `Evaluator.evaluate_all` with an in-memory window
store (what `alert-engine replay` does); through `Evaluator.process` alone (filters and the group
keys, the first agent's share); and through both live agents' code without Kafka, in batches of
500 events over 4 windows partitions (`process`, the hop's records encoded and decoded, and
`Evaluator.windowed_batch`). With `--repeat N` each figure is the best of N runs, each with a
fresh evaluator and store: on a shared machine the best run is the one least slowed by others.
It runs with the worker's garbage collector settings (`alert_engine.worker.collector`); with
`--default-gc`, Python's own (the hot path's many small containers make those cost 10-30%).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.rules.ruleset import Ruleset
from alert_engine.windows.hop import HopBuilder, ReceivedBatch
from alert_engine.windows.store import MemoryWindowStore
from alert_engine.worker.collector import tune_collector
from benchmarks.rules_throughput import make_events, write_rules

SHIPPED = Path(__file__).parents[1] / "rules"
BATCH, PARTITIONS = 500, 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rules", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="Python's own collector thresholds, not the worker's (tune_collector)",
    )
    args = parser.parse_args()
    if not args.default_gc:
        # As `alert-engine worker` runs: the figures are the worker's code, collector included.
        tune_collector()
    events = make_events(args.events)
    print(f"{'rules':>8}{'all rules, events/s':>22}{'filters + group keys':>22}{'both agents':>14}")
    for size in args.rules.split(","):
        if size == "shipped":
            ruleset = load_ruleset(SHIPPED)
        else:
            directory = Path(tempfile.mkdtemp()) / "rules"
            write_rules(directory, int(size))
            ruleset = load_ruleset(directory)
        everything = first_agent = agents = 0.0
        for _ in range(args.repeat):
            evaluator = Evaluator(ruleset, max_event_bytes=65536)
            store = MemoryWindowStore(ruleset.windows())
            start = time.perf_counter()
            for raw in events:
                evaluator.evaluate_all(Stream.RATINGS, raw, store)
            everything = max(everything, len(events) / (time.perf_counter() - start))
            start = time.perf_counter()
            for raw in events:
                evaluator.process(Stream.RATINGS, raw)
            first_agent = max(first_agent, len(events) / (time.perf_counter() - start))
            start = time.perf_counter()
            through_the_hop(ruleset, events)
            agents = max(agents, len(events) / (time.perf_counter() - start))
        print(f"{size:>8}{everything:>22,.0f}{first_agent:>22,.0f}{agents:>14,.0f}")


def through_the_hop(ruleset: Ruleset, events: list[bytes]) -> None:
    """What the input agent and the windowed agent of a worker do with `events` (app.py)."""
    evaluator = Evaluator(ruleset, max_event_bytes=65536)
    store = MemoryWindowStore(ruleset.windows())
    offsets: dict[int, int] = {}
    for first in range(0, len(events), BATCH):
        hop = HopBuilder(
            Stream.RATINGS,
            PARTITIONS,
            evaluator.inputs_version,
            fold=partial(evaluator.fold, Stream.RATINGS),
        )
        for raw in events[first : first + BATCH]:
            outcome = evaluator.process(Stream.RATINGS, raw)
            hop.add(
                raw,
                [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
                outcome.timestamp,
                outcome.watermark,
                0,
                outcome.event_id,
            )
        for batch in hop.batches():
            received = ReceivedBatch.from_json(batch.to_json())
            offset = offsets[batch.partition] = offsets.get(batch.partition, -1) + 1
            evaluator.windowed_batch(received, store, partition=batch.partition, offset=offset)


if __name__ == "__main__":
    main()

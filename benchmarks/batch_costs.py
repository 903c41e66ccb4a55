"""What one batch costs, by batch size: both agents' code on the load benchmark's ratings.

    .venv/bin/python -m benchmarks.batch_costs [--events 6000] [--sizes 1,5,20,100,500]
        [--write-every 2800]

Runs the shipped rules (`rules/`) on `benchmarks.load`'s ratings (500 agents, 1 in 20 negative)
through the input agent's evaluation and hop (`Evaluator.process`, `HopBuilder`) and the windowed
agent's (`ReceivedBatch`, `Evaluator.windowed_batch`, `TableWindowStore` over a dict, flushed per
batch, or with `--write-every N` once N events have been applied since the last flush, as the
worker writes once per commit interval: 2,800 events at 1,000/s), in batches of each size over 4
windows partitions, and counts per event what reaches Kafka: `windows` records and their bytes,
and `window-state` changelog messages (one per group key, watermark and applied-records entry a
write changed) and their bytes. A worker that keeps up at 1,000 events/s takes a batch per fetch
or linger (a few to a few tens of events); one catching up takes 500. The CPU figures are the
process's, noisy on a shared machine; the counts are exact.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import Any

from faust.utils import json as faust_json

from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.hop import HopBuilder, ReceivedBatch
from alert_engine.windows.store import TableWindowStore
from benchmarks.load import event

SHIPPED = Path(__file__).parents[1] / "rules"
PARTITIONS = 4


def costs(events: list[bytes], size: int, write_every: int = 1) -> dict[str, float]:
    ruleset = load_ruleset(SHIPPED)
    evaluator = Evaluator(ruleset, max_event_bytes=65536)
    table: dict[str, Any] = {}
    store = TableWindowStore(table, ruleset.windows(), PARTITIONS)
    offsets: dict[int, int] = {}
    records = record_bytes = writes = write_bytes = 0
    input_cpu = windowed_cpu = 0.0
    unwritten = 0
    for first in range(0, len(events), size):
        started = time.process_time()
        hop = HopBuilder(
            Stream.RATINGS,
            PARTITIONS,
            evaluator.inputs_version,
            fold=partial(evaluator.fold, Stream.RATINGS),
        )
        for raw in events[first : first + size]:
            outcome = evaluator.process(Stream.RATINGS, raw, partition=0)
            if outcome.regroups:
                hop.add(
                    raw,
                    [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
                    outcome.timestamp,
                    outcome.watermark,
                    0,
                    outcome.event_id,
                )
        sent = [(batch.partition, batch.to_json()) for batch in hop.batches()]
        evaluated = time.process_time()
        input_cpu += evaluated - started
        for partition, value in sent:
            records += 1
            record_bytes += len(value)
            offset = offsets[partition] = offsets.get(partition, -1) + 1
            evaluator.windowed_batch(
                ReceivedBatch.from_json(value), store, partition=partition, offset=offset
            )
        for partition in {partition for partition, _ in sent}:
            store.expire(partition, evaluator.watermark(partition))
        unwritten += size
        if unwritten < write_every and first + size < len(events):
            windowed_cpu += time.process_time() - evaluated
            continue
        unwritten = 0
        # What `flush` writes: each changed entry, one changelog message, encoded as Faust does.
        changed = [entry for entry in store._dirty.values() if entry is not None]
        writes += len(changed)
        write_bytes += sum(len(faust_json.dumps(entry)) for entry in changed)
        store.flush()
        windowed_cpu += time.process_time() - evaluated
    n = len(events)
    return {
        "records": records / n,
        "record_bytes": record_bytes / n,
        "writes": writes / n,
        "write_bytes": write_bytes / n,
        "input_us": 1e6 * input_cpu / n,
        "windowed_us": 1e6 * windowed_cpu / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--sizes", default="1,5,20,100,500")
    parser.add_argument(
        "--write-every", type=int, default=1, help="events applied per state write (1: per batch)"
    )
    args = parser.parse_args()
    events = [event(n) for n in range(args.events)]
    print(
        f"{'batch':>6}{'records/ev':>12}{'B/ev':>7}{'changelog/ev':>14}{'B/ev':>7}"
        f"{'input µs/ev':>13}{'windowed µs/ev':>16}"
    )
    for size in (int(each) for each in args.sizes.split(",")):
        found = costs(events, size, args.write_every)
        print(
            f"{size:>6}{found['records']:>12.3f}{found['record_bytes']:>7.0f}"
            f"{found['writes']:>14.3f}{found['write_bytes']:>7.0f}"
            f"{found['input_us']:>13.0f}{found['windowed_us']:>16.0f}"
        )


if __name__ == "__main__":
    main()

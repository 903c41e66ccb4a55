"""The worker's windowed path in process, with its crash and restart points.

The input agent takes consumed events in batches, evaluates them and ships each batch's share to
the windows partitions (`HopBuilder`); the records land on an in-memory `windows` topic with
offsets. The windowed agent takes records in batches, applies each with its offset
(`windowed_batch`), sends the alerts (kept here; delivery keeps the first of an id), and writes
the state to a `TableWindowStore` over a table whose changelog keeps what Faust's JSON codec
would write: after every `flush_every`-th batch (the worker writes once per commit interval,
`DeferredAcks`), and acknowledges the records then, so a commit covers only records whose state
was written. Offsets are committed when a test says so.

- `stop()`: a graceful stop (SIGTERM): everything committed, in-memory parts lost.
- `kill(kept)`: SIGKILL: only `kept` of the last batch's changelog messages reached Kafka (all
  when None), nothing since the last commit is committed; a new worker recovers the table from
  the changelog and consumes from the committed offsets again: the input agent re-sends its
  batches (new records, new offsets), the windowed agent re-applies the records after its commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from faust.utils import json as faust_json

from alert_engine.alerts import Alert
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import load_ruleset
from alert_engine.windows.hop import HopBuilder, ReceivedBatch
from alert_engine.windows.store import TableWindowStore

NEVER_IDLE = 1e9


class ChangelogTable(dict[str, Any]):
    """A Faust table as the store sees it: each write also goes to the changelog, as JSON."""

    def __init__(self, changelog: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.changelog = changelog

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.changelog.append((key, orjson.loads(faust_json.dumps(value))))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.changelog.append((key, None))

    @classmethod
    def recovered(cls, changelog: list[tuple[str, Any]]) -> ChangelogTable:
        """The table a restarted worker reads back from the changelog: each key's last value."""
        table = cls(changelog)
        for key, value in changelog:
            if value is None:
                dict.pop(table, key, None)
            else:
                # Decoded afresh, as Faust's recovery does: nothing shared with what the
                # worker before changed in place.
                dict.__setitem__(table, key, orjson.loads(orjson.dumps(value)))
        return table


@dataclass
class LivePipeline:
    directory: Path
    consumed: Sequence[tuple[int, bytes]]
    input_partitions: int = 4
    windows_partitions: int = 3
    # The windowed agent writes its state (and acknowledges the records) every this many batches.
    flush_every: int = 1
    stream: Stream = Stream.RATINGS
    # What survives a crash: the changelog, the windows topic, the committed offsets.
    changelog: list[tuple[str, Any]] = field(default_factory=list)
    topic: dict[int, list[bytes]] = field(default_factory=dict)
    input_committed: int = 0
    windows_committed: dict[int, int] = field(default_factory=dict)
    # Every alert sent, in order (the same id may come again after a crash).
    sent: list[Alert] = field(default_factory=list)
    late: int = 0

    # The positions in `consumed` of each batch the input agent took, re-sent ones included.
    batches: list[range] = field(default_factory=list)
    # The windowed agent's batches since it last wrote its state.
    unwritten: int = 0

    def __post_init__(self) -> None:
        self.sender_rules = self.receiver_rules = self.directory
        self.topic = {partition: [] for partition in range(self.windows_partitions)}
        self.windows_committed = {partition: 0 for partition in range(self.windows_partitions)}
        self._start()

    def _start(self) -> None:
        self.sender = Evaluator(load_ruleset(self.sender_rules), max_event_bytes=65536)
        # No input partition goes idle in a test (idleness is wall time: a slow machine would
        # make it come and go).
        self.receiver = Evaluator(
            load_ruleset(self.receiver_rules),
            max_event_bytes=65536,
            input_partitions=self.input_partitions,
            idle_seconds=NEVER_IDLE,
        )
        self.table = ChangelogTable.recovered(self.changelog)
        self.store = TableWindowStore(
            self.table, self.receiver.ruleset.windows(), self.windows_partitions
        )
        self.input_position = self.input_committed
        self.windows_position = dict(self.windows_committed)
        # What the windowed agent has acknowledged: the records whose state it wrote.
        self.windows_acked = dict(self.windows_committed)
        self.unwritten = 0

    def reload(self, directory: Path, *, sender: bool = True, receiver: bool = True) -> None:
        """The rules reloaded in one agent or both (a reload between the two: one of them)."""
        if sender:
            self.sender_rules = directory
            self.sender.ruleset = load_ruleset(directory)
        if receiver:
            self.receiver_rules = directory
            self.receiver.ruleset = load_ruleset(directory)
            self.store.add_windows(self.receiver.ruleset.windows())

    @property
    def done(self) -> bool:
        return self.input_position >= len(self.consumed) and all(
            self.windows_position[p] >= len(self.topic[p]) for p in self.topic
        )

    def send(self, size: int) -> None:
        """The input agent's next batch of `size` events, shipped to the windows topic."""
        hop = HopBuilder(
            self.stream,
            self.windows_partitions,
            self.sender.inputs_version,
            fold=partial(self.sender.fold, self.stream),
        )
        batch = self.consumed[self.input_position : self.input_position + size]
        self.batches.append(range(self.input_position, self.input_position + len(batch)))
        for partition, raw in batch:
            outcome = self.sender.process(self.stream, raw, partition=partition)
            self.sent.extend(outcome.alerts)
            hop.add(
                raw,
                [(group.grouping, group.key, group.inputs) for group in outcome.regroups],
                outcome.timestamp,
                outcome.watermark,
                partition,
                outcome.event_id,
            )
        self.input_position += len(batch)
        for record in hop.batches():
            self.topic[record.partition].append(record.to_json())

    def apply(self, size: int) -> list[tuple[str, Any]]:
        """The windowed agent's next batch: up to `size` records of each partition; the
        changelog messages it wrote (none when it is not its turn to write)."""
        touched = set()
        alerts: list[Alert] = []
        for partition, records in self.topic.items():
            start = self.windows_position[partition]
            for offset in range(start, min(start + size, len(records))):
                received = ReceivedBatch.from_json(records[offset])
                alerts.extend(
                    self.receiver.windowed_batch(
                        received, self.store, partition=partition, offset=offset
                    )
                )
                touched.add(partition)
            self.windows_position[partition] = min(start + size, len(records))
        for partition in touched:
            self.store.expire(partition, self.receiver.watermark(partition))
        self.sent.extend(alerts)  # in Kafka before the state is written
        self.unwritten += 1
        if self.unwritten < self.flush_every:
            return []
        return self.write()

    def write(self) -> list[tuple[str, Any]]:
        """The windowed agent writes its state and acknowledges the records it holds; the
        changelog messages written."""
        before = len(self.changelog)
        self.store.flush()
        self.windows_acked = dict(self.windows_position)
        self.unwritten = 0
        return self.changelog[before:]

    def commit(self) -> None:
        self.input_committed = self.input_position
        self.windows_committed = dict(self.windows_acked)

    def finish(self) -> None:
        """Done: the late events of the running agents counted in."""
        self._count_late()

    def _count_late(self) -> None:
        self.late += sum(self.sender.stats.late_events.values())
        self.late += sum(self.receiver.stats.late_events.values())

    def stop(self) -> None:
        """SIGTERM: Faust waits for every record taken to be acknowledged (the state is
        written), commits, and the worker starts again."""
        self.write()
        self.commit()
        self._count_late()
        self._start()

    def kill(self, last_flush: list[tuple[str, Any]], kept: int | None = None) -> None:
        """SIGKILL: of the last flush's changelog messages only the first `kept` reached Kafka;
        nothing since the last commit is committed."""
        if kept is not None and last_flush:
            lost = len(last_flush) - kept
            if lost > 0:
                del self.changelog[len(self.changelog) - lost :]
        self._count_late()
        self._start()

    def run(self, sizes: Sequence[int], records: int = 1_000_000) -> None:
        """Until everything is consumed: input batches of `sizes` (cycled), each followed by
        a windowed batch of up to `records` records per partition."""
        turn = 0
        while not self.done:
            self.send(sizes[turn % len(sizes)])
            self.apply(records)
            turn += 1
        self.write()
        self._count_late()

    def alerts(self) -> list[Alert]:
        """What delivery delivers: the first alert of each id."""
        seen: set[str] = set()
        first = []
        for alert in self.sent:
            if alert.id not in seen:
                seen.add(alert.id)
                first.append(alert)
        return first

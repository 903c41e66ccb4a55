"""What the worker's agents produce: the records one sink publishes to their topics."""

from __future__ import annotations

from typing import TypeAlias

from alert_engine.alerts import Alert
from alert_engine.cases import CaseEvent
from alert_engine.deadletters import DeadLetter
from alert_engine.windows.hop import WindowBatch

Output: TypeAlias = Alert | CaseEvent | DeadLetter | WindowBatch
# What an agent yields for one input record; often empty.
Outputs: TypeAlias = list[Output]

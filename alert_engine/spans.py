"""Spans as `(start, end)` pairs: working time in a business calendar, the characters of a log
line to mask."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

Point = TypeVar("Point", int, datetime)


def merged(spans: Iterable[tuple[Point, Point]]) -> list[tuple[Point, Point]]:
    """The spans in order, those that overlap or touch joined into one."""
    joined: list[tuple[Point, Point]] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined

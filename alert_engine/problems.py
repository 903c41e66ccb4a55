"""The engine's errors: one root type, and the located problems that file checks report.

Every error the engine raises on purpose is an `AlertEngineError`, so a caller (the CLI's map
from error to message and exit code, a worker's start-up) can tell the engine's own refusals from
bugs. Checks of files people write (rules, routing) never stop at the first problem: they raise a
`ProblemsError` listing every `Problem`, each with its file, line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class AlertEngineError(Exception):
    """The root of the errors the engine raises on purpose."""


@dataclass(frozen=True)
class Location:
    file: Path
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ProblemsError(AlertEngineError):
    """A file (or a set of files) refused, with every problem found in it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

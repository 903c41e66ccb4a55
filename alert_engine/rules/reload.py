"""Hot reload: a changed rules directory is loaded, validated and swapped in whole, or refused.

Every worker polls the same files, so all of them end on the same ruleset version (shown on
`/stats`). A rule set with problems is refused with its problems logged and shown on `/stats`; the
rules in force stay. Loading never runs on the event loop: `check` (called by the worker's timer,
on the loop) hands a changed directory to a loader thread, and a later `check` swaps in what it
loaded, so the loop keeps consuming, delivering and answering `/health` while a large file
parses. Swapping is one assignment of `Evaluator.ruleset`, done on the loop between two events
(evaluation is synchronous), so no event sees half of two rule sets.

A rule file the watcher cannot read (a dangling symlink, a symlink loop) is skipped, reported on
`/stats` and in the log, and watching goes on: the other files still reload when they change.
"""

from __future__ import annotations

import errno
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from alert_engine.evaluate import Evaluator
from alert_engine.rules.load import RULE_FILE_SUFFIXES, RulesetError, load_ruleset
from alert_engine.rules.ruleset import Ruleset
from alert_engine.rules.yamlsource import YamlLimits

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Snapshot:
    """What the watcher saw of the rules directory."""

    # Changes when a rule file is added, removed or written.
    fingerprint: Fingerprint
    # `file:1:1: why` for each rule file that could not be looked at.
    unreadable: tuple[str, ...] = ()


def snapshot(directory: Path) -> Snapshot:
    try:
        paths = sorted(path for path in directory.rglob("*") if path.suffix in RULE_FILE_SUFFIXES)
    except OSError as exc:
        return Snapshot((), (f"{directory}:1:1: cannot list the rules directory: {exc}",))
    entries: list[tuple[str, int, int]] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError as exc:
            # One bad entry must not blind the watcher to every other file.
            if not _hidden(path, directory):
                unreadable.append(f"{path}:1:1: {_why_unreadable(path, exc)}: file skipped")
            continue
        entries.append((str(path), stat.st_mtime_ns, stat.st_size))
    return Snapshot(tuple(entries), tuple(unreadable))


def _hidden(path: Path, directory: Path) -> bool:
    # The loader skips hidden entries (a ConfigMap volume's `..<timestamp>` copies): so does this.
    return any(part.startswith(".") for part in path.relative_to(directory).parts)


def _why_unreadable(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT and path.is_symlink():
        return f"symlink to {os.readlink(path)}, which does not exist"
    return f"cannot read: {exc.strerror or exc}"


class RulesReloader:
    def __init__(
        self, directory: Path, evaluator: Evaluator, *, limits: YamlLimits | None = None
    ) -> None:
        self.directory = directory
        self.evaluator = evaluator
        self.limits = limits
        first = snapshot(directory)
        self.seen = first.fingerprint
        # Problems of the last rule set refused, and of the files the watcher cannot read.
        self.load_problems: list[str] = []
        self.unreadable: tuple[str, ...] = ()
        self._note_unreadable(first.unreadable)
        # One loader thread: loads of one directory follow each other, never overlap.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rules-loader")
        self._loading: Future[Ruleset] | None = None

    @property
    def problems(self) -> list[str]:
        """What `/stats` shows as `ruleset_problems`."""
        return [*self.unreadable, *self.load_problems]

    def check(self) -> bool:
        """Called on the event loop, never blocks it: swaps in a rule set loaded since the last
        call, and starts loading the files if they changed. True if a new rule set is in force."""
        swapped = False
        if self._loading is not None and self._loading.done():
            swapped = self._finish(self._loading)
            self._loading = None
        if self._loading is None:
            current = snapshot(self.directory)
            self._note_unreadable(current.unreadable)
            if current.fingerprint != self.seen:
                self.seen = current.fingerprint
                self._loading = self._loader.submit(
                    load_ruleset, self.directory, limits=self.limits
                )
        return swapped

    def wait(self, timeout: float | None = None) -> None:
        """Until the load in progress (if any) is done; the next `check` swaps it in."""
        loading = self._loading
        if loading is not None:
            loading.exception(timeout)

    def _finish(self, loaded: Future[Ruleset]) -> bool:
        exc = loaded.exception()
        if exc is not None:
            # Whatever the files hold, the rules in force stay in force.
            problems = exc.problems if isinstance(exc, RulesetError) else [exc]
            self.load_problems = [str(problem) for problem in problems]
            log.error(
                "rules in %s not reloaded, ruleset %s stays in force:\n%s",
                self.directory,
                self.evaluator.ruleset.version,
                "\n".join(self.load_problems),
            )
            return False
        ruleset = loaded.result()
        self.load_problems = []
        if ruleset.version == self.evaluator.ruleset.version:
            return False
        old = self.evaluator.ruleset.version
        self.evaluator.ruleset = ruleset
        log.warning("rules reloaded: ruleset %s replaces %s", ruleset.version, old)
        return True

    def _note_unreadable(self, unreadable: tuple[str, ...]) -> None:
        # Logged when they appear, not at every poll.
        new = [entry for entry in unreadable if entry not in self.unreadable]
        if new:
            log.error(
                "rule file(s) in %s skipped, the others are still watched:\n%s",
                self.directory,
                "\n".join(new),
            )
        if self.unreadable and not unreadable:
            log.warning("every rule file in %s is readable again", self.directory)
        self.unreadable = unreadable

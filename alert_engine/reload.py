"""Hot reload: a changed rules directory is loaded, validated and swapped in whole, or refused.

Every worker polls the same files, so all of them end on the same ruleset version (shown on
`/stats`). A rule set with problems is refused with its problems logged and shown on `/stats`; the
rules in force stay. Swapping is one assignment of `Evaluator.ruleset`, done between two events
(evaluation is synchronous), so no event sees half of two rule sets.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alert_engine.evaluate import Evaluator
from alert_engine.rules import RULE_FILE_SUFFIXES, RulesetError, load_ruleset
from alert_engine.yamlsource import YamlLimits

log = logging.getLogger(__name__)


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Changes when a rule file is added, removed or written."""
    try:
        return tuple(
            sorted(
                (str(path), stat.st_mtime_ns, stat.st_size)
                for path in directory.rglob("*")
                if path.suffix in RULE_FILE_SUFFIXES and (stat := path.stat())
            )
        )
    except OSError:
        return ()


class RulesReloader:
    def __init__(
        self, directory: Path, evaluator: Evaluator, *, limits: YamlLimits | None = None
    ) -> None:
        self.directory = directory
        self.evaluator = evaluator
        self.limits = limits
        self.seen = fingerprint(directory)
        self.problems: list[str] = []

    def check(self) -> bool:
        """Reload if the files changed; True if a new rule set is now in force."""
        current = fingerprint(self.directory)
        if current == self.seen:
            return False
        self.seen = current
        return self.reload()

    def reload(self) -> bool:
        try:
            ruleset = load_ruleset(self.directory, limits=self.limits)
        except Exception as exc:
            # Whatever the files hold, the rules in force stay in force.
            problems = exc.problems if isinstance(exc, RulesetError) else [exc]
            self.problems = [str(problem) for problem in problems]
            log.error(
                "rules in %s not reloaded, ruleset %s stays in force:\n%s",
                self.directory,
                self.evaluator.ruleset.version,
                "\n".join(self.problems),
            )
            return False
        self.problems = []
        if ruleset.version == self.evaluator.ruleset.version:
            return False
        old = self.evaluator.ruleset.version
        self.evaluator.ruleset = ruleset
        log.warning("rules reloaded: ruleset %s replaces %s", ruleset.version, old)
        return True

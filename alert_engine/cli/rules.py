"""`alert-engine rules ...` and `alert-engine replay`: check, try and backtest rule files."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from alert_engine.cli.output import exit_with, exit_with_problems
from alert_engine.rules.load import RulesetError, load_rule_files, load_ruleset
from alert_engine.rules.ruleset import Ruleset
from alert_engine.settings import EngineSettings

_Command = TypeVar("_Command", bound=Callable[..., Any])


def _events_option(help: str) -> Callable[[_Command], _Command]:
    return click.option(
        "--events",
        "event_files",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        multiple=True,
        required=True,
        help=help,
    )


def _ruleset(directory: Path) -> Ruleset:
    try:
        return load_ruleset(directory, limits=EngineSettings().rule_file_limits)
    except RulesetError as exc:
        exit_with_problems(exc)


@click.group()
def rules() -> None:
    """Check and test rule files."""


@rules.command("check")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("rules"))
def rules_check(directory: Path) -> None:
    """Validate every rule file in DIRECTORY; list each problem with file, line and column."""
    from alert_engine.rules.reload import snapshot

    # Files a worker would skip (a dangling symlink, a symlink loop): a check fails on them.
    skipped = snapshot(directory).unreadable if directory.is_dir() else ()
    for entry in skipped:
        click.echo(entry, err=True)
    ruleset = _ruleset(directory)
    if skipped:
        exit_with(f"{len(skipped)} rule file(s) cannot be read and would be skipped")
    click.echo(f"{len(ruleset.rules)} rule(s) OK, ruleset version {ruleset.version}")


@rules.command("test")
@click.argument("rule")
@_events_option("JSON lines of events (repeatable).")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=Path("rules"))
def rules_test(rule: str, event_files: tuple[Path, ...], rules_dir: Path) -> None:
    """Run RULE (a rule name in --rules, or a rule file) on events: what matches, and why."""
    from alert_engine.backtest import read_events, try_rule

    if Path(rule).is_file():
        try:
            ruleset = load_rule_files(
                [Path(rule)],
                defaults_file=_defaults_next_to(Path(rule)),
                limits=EngineSettings().rule_file_limits,
            )
        except RulesetError as exc:
            exit_with_problems(exc)
        [found] = ruleset.rules[:1] or [None]
    else:
        found = _ruleset(rules_dir).get(rule)
    if found is None:
        exit_with(f"no rule named {rule!r} in {rules_dir}")
    max_bytes = EngineSettings().max_event_bytes
    verdicts = try_rule(found, read_events(event_files), max_event_bytes=max_bytes)
    for verdict in verdicts:
        fires = verdict.outcome in ("match", "alert")
        label = f"{verdict.outcome.upper() if fires else verdict.outcome:<8}"
        # Colour only on a terminal: click.echo drops the styles when stdout is not one.
        if fires:
            label = click.style(label, fg="red", bold=True)
        elif verdict.outcome in ("miss", "rejected"):
            label = click.style(label, fg="yellow")
        click.echo(f"{verdict.source}  {verdict.event_id or '-'}  {label} {verdict.detail}")
    outcomes = Counter(verdict.outcome for verdict in verdicts)
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    click.echo(f"{found.name}: {len(verdicts)} event(s): {summary or 'none'}")


@rules.command("schema")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("rules.schema.json"),
    show_default=True,
    help="Where to write the schema; `-` for stdout.",
)
def rules_schema(output: Path) -> None:
    """Write the JSON Schema of rule files, for editors with a YAML language server."""
    import json

    from alert_engine.rules.spec import rule_file_schema

    text = json.dumps(rule_file_schema(), indent=2, sort_keys=True) + "\n"
    if str(output) == "-":
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path), default=Path("rules"))
@_events_option("JSON lines of past events, ratings and interactions (repeatable).")
@click.option("--top", default=5, show_default=True, help="How many top keys to show per rule.")
def replay(directory: Path, event_files: tuple[Path, ...], top: int) -> None:
    """Backtest the rules in DIRECTORY on past events: alerts per rule, per day, top keys, and
    per day for all rules together."""
    from alert_engine.backtest import REJECTION_REASONS, read_events
    from alert_engine.backtest import replay as run_replay

    ruleset = _ruleset(directory)
    max_event_bytes = EngineSettings().max_event_bytes
    with _reading_progress(event_files) as on_read:
        report = run_replay(
            ruleset, read_events(event_files, on_read=on_read), max_event_bytes=max_event_bytes
        )
    rejected = sum(report.rejected.values())
    click.echo(
        f"{report.events} event(s) replayed against ruleset {ruleset.version}"
        + (f"; {rejected} rejected:" if rejected else "")
    )
    width = max((len(reason) for reason in report.rejected), default=0)
    for reason, count in sorted(report.rejected.items(), key=lambda item: (-item[1], item[0])):
        words = REJECTION_REASONS.get(reason, "")
        click.echo(f"  {reason:<{width}}  {count}" + (f"  ({words})" if words else ""))
    for name, rule in report.rules.items():
        throttled = f", {rule.throttled} throttled" if rule.throttled else ""
        _echo_per_day(f"{name}:", f"{rule.alerts} alert(s){throttled}", rule.per_day)
        if rule.keys:
            keys = ", ".join(f"{key} ({count})" for key, count in rule.keys.most_common(top))
            click.echo(f"  top keys: {keys}")
    per_day = report.per_day
    _echo_per_day("all rules:", f"{sum(per_day.values())} alert(s)", per_day)


def _echo_per_day(heading: str, summary: str, per_day: Counter[str]) -> None:
    click.echo("\n" + click.style(heading, bold=True) + f" {summary}")
    for day, count in sorted(per_day.items()):
        click.echo(f"  {day}  {count}")


# Input at least this large gets a progress bar (on a terminal): about 10,000 events, a few
# seconds of reading.
PROGRESS_MIN_BYTES = 2 * 1024 * 1024
# The bar is redrawn at most once per this many bytes read: a redraw per line would cost more
# than the replay.
_PROGRESS_STEP_BYTES = 64 * 1024


@contextlib.contextmanager
def _reading_progress(paths: Sequence[Path]) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over the bytes of `paths` on stderr, when stderr is a terminal and the
    files are large; yields what to tell each line's size, or None when there is no bar."""
    total = sum(path.stat().st_size for path in paths)
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label="reading events", file=sys.stderr) as bar:
        pending = 0

        def on_read(size: int) -> None:
            nonlocal pending
            pending += size
            if pending >= _PROGRESS_STEP_BYTES:
                bar.update(pending)
                pending = 0

        yield on_read
        bar.update(pending)


def _defaults_next_to(rule_file: Path) -> Path | None:
    from alert_engine.rules.load import DEFAULTS_FILES

    found = [rule_file.parent / name for name in DEFAULTS_FILES]
    return next((path for path in found if path.is_file()), None)

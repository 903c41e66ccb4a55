"""`alert-engine rules ...` and `alert-engine replay`: check, try and backtest rule files."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from alert_engine.cli.output import EXIT_PROBLEMS, print_problems
from alert_engine.rules.load import RulesetError, load_rule_files, load_ruleset
from alert_engine.settings import EngineSettings


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
    try:
        ruleset = load_ruleset(directory, limits=EngineSettings().rule_file_limits)
    except RulesetError as exc:
        print_problems(exc)
        sys.exit(EXIT_PROBLEMS)
    if skipped:
        click.echo(f"{len(skipped)} rule file(s) cannot be read and would be skipped", err=True)
        sys.exit(EXIT_PROBLEMS)
    click.echo(f"{len(ruleset.rules)} rule(s) OK, ruleset version {ruleset.version}")


@rules.command("test")
@click.argument("rule")
@click.option(
    "--events",
    "event_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="JSON lines of events (repeatable).",
)
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=Path("rules"))
def rules_test(rule: str, event_files: tuple[Path, ...], rules_dir: Path) -> None:
    """Run RULE (a rule name in --rules, or a rule file) on events: what matches, and why."""
    from alert_engine.backtest import read_events, try_rule

    try:
        if Path(rule).is_file():
            ruleset = load_rule_files(
                [Path(rule)],
                defaults_file=_defaults_next_to(Path(rule)),
                limits=EngineSettings().rule_file_limits,
            )
            [found] = ruleset.rules[:1] or [None]
        else:
            ruleset = load_ruleset(rules_dir, limits=EngineSettings().rule_file_limits)
            found = ruleset.get(rule)
    except RulesetError as exc:
        print_problems(exc)
        sys.exit(EXIT_PROBLEMS)
    if found is None:
        click.echo(f"no rule named {rule!r} in {rules_dir}", err=True)
        sys.exit(EXIT_PROBLEMS)
    max_bytes = EngineSettings().max_event_bytes
    verdicts = try_rule(found, read_events(event_files), max_event_bytes=max_bytes)
    for verdict in verdicts:
        label = (
            verdict.outcome.upper() if verdict.outcome in ("match", "alert") else verdict.outcome
        )
        click.echo(f"{verdict.source}  {verdict.event_id or '-'}  {label:<8} {verdict.detail}")
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
@click.option(
    "--events",
    "event_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    required=True,
    help="JSON lines of past events, ratings and interactions (repeatable).",
)
@click.option("--top", default=5, show_default=True, help="How many top keys to show per rule.")
def replay(directory: Path, event_files: tuple[Path, ...], top: int) -> None:
    """Backtest the rules in DIRECTORY on past events: alerts per rule, per day, top keys."""
    from alert_engine.backtest import read_events
    from alert_engine.backtest import replay as run_replay

    try:
        ruleset = load_ruleset(directory, limits=EngineSettings().rule_file_limits)
    except RulesetError as exc:
        print_problems(exc)
        sys.exit(EXIT_PROBLEMS)
    report = run_replay(
        ruleset, read_events(event_files), max_event_bytes=EngineSettings().max_event_bytes
    )
    rejected = sum(report.rejected.values())
    click.echo(
        f"{report.events} event(s) replayed against ruleset {ruleset.version}"
        + (f"; {rejected} rejected ({dict(report.rejected)})" if rejected else "")
    )
    for name, rule in report.rules.items():
        throttled = f", {rule.throttled} throttled" if rule.throttled else ""
        click.echo(f"\n{name}: {rule.alerts} alert(s){throttled}")
        for day, count in sorted(rule.per_day.items()):
            click.echo(f"  {day}  {count}")
        if rule.keys:
            keys = ", ".join(f"{key} ({count})" for key, count in rule.keys.most_common(top))
            click.echo(f"  top keys: {keys}")


def _defaults_next_to(rule_file: Path) -> Path | None:
    from alert_engine.rules.load import DEFAULTS_FILES

    found = [rule_file.parent / name for name in DEFAULTS_FILES]
    return next((path for path in found if path.is_file()), None)

"""`alert-engine report`'s dates and its refusals (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner

from alert_engine.cli.main import main
from alert_engine.cli.report import parse_time

NOW = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-03-01", False, datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01", True, datetime(2026, 3, 2, tzinfo=UTC)),  # --until: the day counts
        ("2026-03-01T08:15", False, datetime(2026, 3, 1, 8, 15, tzinfo=UTC)),
        ("2026-03-01T08:15+02:00", False, datetime(2026, 3, 1, 6, 15, tzinfo=UTC)),
        ("7d", False, datetime(2026, 11, 26, 10, 30, tzinfo=UTC)),
        ("52w", False, datetime(2025, 12, 4, 10, 30, tzinfo=UTC)),
        ("this-week", False, datetime(2026, 11, 30, tzinfo=UTC)),
        ("this-month", False, datetime(2026, 12, 1, tzinfo=UTC)),
        ("now", True, NOW),
    ],
)
def test_dates_a_manager_types(text: str, end: bool, expected: datetime) -> None:
    assert parse_time(text, now=NOW, end=end) == expected


def test_a_date_it_cannot_read_says_what_it_takes() -> None:
    with pytest.raises(click.BadParameter, match="7d / 4w / 52w"):
        parse_time("last tuesday", now=NOW)


def test_without_the_history_database_the_report_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ALERT_ENGINE_DATABASE_URL", raising=False)
    # Whatever was asked: the figures are the history's alone, and none is set.
    for args in ([], ["--by", "week"], ["--format", "csv"], ["--team", "orders"]):
        result = CliRunner().invoke(main, ["report", *args])
        assert result.exit_code == 3, result.output  # what it needs is missing, as for Kafka
        [line] = result.output.splitlines()
        assert line.startswith("error: the outcome figures need the history database")
        assert "ALERT_ENGINE_DATABASE_URL=postgresql://" in line
    result = CliRunner().invoke(main, ["report", "--since", "2026-03-02", "--until", "2026-03-01"])
    assert result.exit_code == 2
    assert "--until must be after --since" in result.output


def test_an_unreachable_history_database_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A port nothing listens on (the discard port, refused on loopback).
    monkeypatch.setenv("ALERT_ENGINE_DATABASE_URL", "postgresql://u@127.0.0.1:9/db")
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 3  # infrastructure unreachable, as for Kafka and Redis
    assert "cannot reach the history database" in result.output
    for command in ("migrate", "rebuild"):
        result = CliRunner().invoke(main, ["history", command])
        assert result.exit_code == 3
        assert "cannot reach PostgreSQL at postgresql://u@127.0.0.1:9/db (" in result.output
        assert "; set ALERT_ENGINE_DATABASE_URL" in result.output


def test_a_database_url_that_is_not_postgresql_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERT_ENGINE_DATABASE_URL", "mysql://u@db/x")
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 2
    assert "ALERT_ENGINE_DATABASE_URL: Value error, expected a postgresql:// URL" in result.output


def test_a_history_database_without_tables_says_what_to_run(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_ENGINE_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 1
    assert "run `alert-engine history migrate`" in result.output
    result = CliRunner().invoke(main, ["history", "migrate"])
    assert result.exit_code == 0, result.output
    assert "applied 0001_history" in result.output
    result = CliRunner().invoke(main, ["report", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("all,0,0,")

"""`alert-engine replay` as a user reads it: rejected lines in words, the daily total of all
rules, a progress bar on a terminal for large files; `rules test` in colour on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from click.testing import CliRunner

from alert_engine.backtest import REJECTION_REASONS
from alert_engine.cli.main import main
from alert_engine.cli.rules import PROGRESS_MIN_BYTES
from tests.factories import interaction, rating

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def low_rating(n: int, day: int) -> bytes:
    time = DAY1 + timedelta(days=day, minutes=n)
    return orjson.dumps(rating(id=f"r-{day}-{n}", rating=1, time=time.isoformat()))


def blocks(output: str) -> dict[str, list[str]]:
    """The report's blocks by heading (`name:`), each its lines after the heading's."""
    found: dict[str, list[str]] = {}
    for block in output.split("\n\n")[1:]:
        heading, *rest = block.strip("\n").splitlines()
        found[heading.split(":")[0]] = [heading.split(":", 1)[1].strip(), *rest]
    return found


def per_day(lines: list[str]) -> dict[str, int]:
    days = [line.split() for line in lines if re.fullmatch(r"  \d{4}-\d\d-\d\d  \d+", line)]
    return {day: int(count) for day, count in days}


def test_replay_lists_rejected_lines_by_reason_in_words(tmp_path: Path) -> None:
    events = write_lines(
        tmp_path / "history.jsonl",
        [
            low_rating(0, 0),
            b"this line is not JSON",
            b"{not json either",
            b"[1, 2, 3]",
            orjson.dumps({"neither": "rating nor interaction"}),
            orjson.dumps(rating(id="r-bad", rating="five")),
            orjson.dumps(interaction(id="i-1")),
        ],
    )
    result = CliRunner().invoke(main, ["replay", "rules", "--events", str(events)])
    assert result.exit_code == 0, result.output
    head = result.output.split("\n\n")[0].splitlines()
    assert head[0].startswith("7 event(s) replayed") and head[0].endswith("; 5 rejected:")
    rows = [line.split(None, 2) for line in head[1:]]
    assert rows[0] == ["not_json", "2", f"({REJECTION_REASONS['not_json']})"]
    assert sorted(row[0] for row in rows[1:]) == ["invalid", "not_object", "unknown_stream"]
    assert all(row[1] == "1" and row[2] == f"({REJECTION_REASONS[row[0]]})" for row in rows[1:])
    assert "{" not in "\n".join(head)  # no Python dict shown

    # `rules test` names a line that is not JSON the same way.
    tried = CliRunner().invoke(main, ["rules", "test", "negative-rating", "--events", str(events)])
    assert tried.exit_code == 0, tried.output
    assert re.search(r"history\.jsonl:2  -  rejected\s+not_json: ", tried.output)


def test_replay_totals_alerts_per_day_across_rules(tmp_path: Path) -> None:
    lines = [low_rating(n, day) for day in (0, 1) for n in range(2 + day)]
    lines.append(orjson.dumps(rating(id="r-happy", rating=5, time=DAY1.isoformat())))
    events = write_lines(tmp_path / "history.jsonl", lines)
    result = CliRunner().invoke(main, ["replay", "rules", "--events", str(events)])
    assert result.exit_code == 0, result.output
    report = blocks(result.output)
    total = report.pop("all rules")
    expected: dict[str, int] = {}
    for lines_of_rule in report.values():
        for day, count in per_day(lines_of_rule).items():
            expected[day] = expected.get(day, 0) + count
    assert len(expected) == 2 and min(expected.values()) > 0  # two days, alerts on each
    assert per_day(total) == expected
    assert total[0] == f"{sum(expected.values())} alert(s)"


def _large_history(tmp_path: Path) -> Path:
    # Lines that are quick to reject make a large file that replays in well under a second.
    filler = b"x" * 1023
    count = PROGRESS_MIN_BYTES // 1024 + 1
    return write_lines(tmp_path / "large.jsonl", [low_rating(0, 0), *[filler] * count])


def _run_on_terminal(args: list[str]) -> tuple[int, str, str]:
    """Run `alert-engine ARGS` with stderr on a pseudo-terminal; exit code, stdout, stderr."""
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alert_engine.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        cwd=REPO_ROOT,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    return proc.wait(timeout=60), out, seen.decode(errors="replace")


def test_replay_shows_a_progress_bar_on_a_terminal_for_large_files(tmp_path: Path) -> None:
    large = _large_history(tmp_path)
    code, out, terminal = _run_on_terminal(["replay", "rules", "--events", str(large)])
    assert code == 0, terminal
    assert "reading events" in terminal and "100%" in terminal
    assert "event(s) replayed" in out and "reading events" not in out

    # Not on a terminal (a pipe, a CI log): no bar.
    piped = CliRunner().invoke(main, ["replay", "rules", "--events", str(large)])
    assert piped.exit_code == 0 and "reading events" not in piped.output


def test_replay_of_a_small_file_shows_no_progress_bar_even_on_a_terminal(tmp_path: Path) -> None:
    small = write_lines(tmp_path / "small.jsonl", [low_rating(n, 0) for n in range(3)])
    code, out, terminal = _run_on_terminal(["replay", "rules", "--events", str(small)])
    assert code == 0, terminal
    assert "event(s) replayed" in out and terminal == ""


def test_rules_test_colours_its_verdicts_only_on_a_terminal(tmp_path: Path) -> None:
    events = write_lines(
        tmp_path / "e.jsonl", [low_rating(0, 0), orjson.dumps(rating(id="r-ok", rating=5))]
    )
    args = ["rules", "test", "negative-rating", "--events", str(events)]
    coloured = CliRunner().invoke(main, args, color=True)
    plain = CliRunner().invoke(main, args)
    assert coloured.exit_code == plain.exit_code == 0
    assert ANSI.search(plain.output) is None
    match_line = next(line for line in coloured.output.splitlines() if "MATCH" in line)
    assert re.search(r"\x1b\[[0-9;]*mMATCH", match_line)
    assert ANSI.sub("", coloured.output) == plain.output

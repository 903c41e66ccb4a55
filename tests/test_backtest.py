"""`alert-engine rules test` and `alert-engine replay`, through the command line."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from alert_engine.cli.main import main
from tests.factories import interaction, rating

RULES = Path(__file__).parents[1] / "rules"
DAY1 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_rules_test_shows_which_events_match_and_the_values(tmp_path: Path) -> None:
    (tmp_path / "rude.yaml").write_text(
        "name: rude\nsource: ratings\ncondition: comment.lowerAscii().contains('rude')\n"
    )
    events = write_events(
        tmp_path / "events.jsonl",
        [
            rating(id="r-rude", comment="So RUDE"),
            rating(id="r-kind", comment="kind"),
            rating(id="r-none", comment=None),
            interaction(id="i-1"),  # another stream: not shown
        ],
    )
    code, output = run("rules", "test", "rude", "--rules", str(tmp_path), "--events", str(events))
    assert code == 0, output
    lines = output.splitlines()
    assert "r-rude  MATCH    comment=So RUDE" in lines[0]
    assert "r-kind  no       comment=kind" in lines[1]
    assert "r-none  miss" in lines[2]
    assert lines[-1] == "rude: 3 event(s): 1 match, 1 miss, 1 no"


def test_rules_test_on_a_windowed_rule_shows_the_aggregates_until_it_fires(tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "events.jsonl",
        [
            rating(
                id=f"r-{n}",
                rating=2,
                agent={"id": "a-1"},
                time=(DAY1 + timedelta(minutes=n)).isoformat(),
            )
            for n in range(6)
        ],
    )
    rule_file = RULES / "agent-low-average.yaml"
    code, output = run("rules", "test", str(rule_file), "--events", str(events))
    assert code == 0, output
    lines = output.splitlines()
    assert "counted" in lines[0] and "key=a-1" in lines[0] and "responses=1 average=2" in lines[0]
    assert "ALERT" in lines[4] and "responses=5" in lines[4]
    assert "ALERT" not in lines[5]  # fired once for the window


def test_replay_counts_alerts_per_rule_per_day_with_top_keys(tmp_path: Path) -> None:
    history = []
    for day in (DAY1, DAY2):
        for n in range(3):
            history.append(
                rating(
                    id=f"r-{day.day}-{n}",
                    rating=1,
                    customer={"id": "c-loud"},
                    time=(day + timedelta(hours=n)).isoformat(),
                )
            )
    history.append(
        rating(id="r-quiet", rating=2, customer={"id": "c-quiet"}, time=DAY2.isoformat())
    )
    history.append(rating(id="r-happy", rating=5, time=DAY2.isoformat()))
    history.append({"not": "an event"})
    events = write_events(tmp_path / "history.jsonl", history)
    code, output = run("replay", str(RULES), "--events", str(events))
    assert code == 0, output
    assert "9 event(s) replayed" in output and "1 rejected" in output
    block = output.split("negative-rating: ", 1)[1].split("\n\n")[0]
    assert block.startswith("7 alert(s)")
    assert "2026-11-02  3" in block and "2026-11-03  4" in block
    # The same customer twice within 7 days: once per window of the hopping 7-day rule.
    repeat = output.split("repeat-negative-customer: ", 1)[1].split("\n\n")[0]
    assert "top keys: c-loud" in repeat
    assert "c-quiet" not in repeat


def test_replay_applies_throttles_by_event_time(tmp_path: Path) -> None:
    (tmp_path / "neg.yaml").write_text(
        "name: neg\nsource: ratings\ncondition: rating <= 2\n"
        "throttle: {period: 1h, key: customer.id}\n"
    )
    events = write_events(
        tmp_path / "e.jsonl",
        [
            rating(id=f"r-{n}", rating=1, time=(DAY1 + timedelta(minutes=25 * n)).isoformat())
            for n in range(5)  # 0, 25, 50 min: one alert; 75, 100 min: one more
        ],
    )
    code, output = run("replay", str(tmp_path), "--events", str(events))
    assert code == 0, output
    assert "neg: 2 alert(s), 3 throttled" in output
    assert "top keys: c-1 (2)" in output

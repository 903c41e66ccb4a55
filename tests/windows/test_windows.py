"""Windowed rules through the Evaluator with an in-memory store: the code the live agent runs."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_engine.alerts import Alert, alert_id
from alert_engine.evaluate import Evaluator
from alert_engine.events import Stream
from alert_engine.rules.load import RulesetError, load_ruleset
from alert_engine.windows.definitions import WindowSpec, window_ranges, window_seconds
from alert_engine.windows.store import MemoryWindowStore, WindowStore, state_key
from tests.factories import encode, interaction, rating

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

AGENT_AVERAGE = """\
name: agent-low-average
source: ratings
group_by: agent.id
window: {size: 1h}
aggregates:
  responses: count()
  average: avg(rating)
min_sample: 5
condition: average < 3.0
"""


def load(tmp_path: Path, **files: str) -> tuple[Evaluator, MemoryWindowStore]:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    ruleset = load_ruleset(tmp_path)
    return Evaluator(ruleset, max_event_bytes=65536), MemoryWindowStore(ruleset.windows())


def feed(
    evaluator: Evaluator, store: WindowStore, stream: Stream, events: list[dict[str, Any]]
) -> list[Alert]:
    return [
        alert for event in events for alert in evaluator.evaluate_all(stream, encode(event), store)
    ]


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def test_a_windowed_rule_fires_once_when_its_condition_first_holds(tmp_path: Path) -> None:
    evaluator, store = load(tmp_path, rule=AGENT_AVERAGE)
    scores = [2, 3, 1, 4, 2, 1, 1]  # after 5: avg 2.4 -> fires; later events in the window do not
    events = [
        rating(id=f"r-{n}", rating=score, agent={"id": "a-1"}, time=at(n))
        for n, score in enumerate(scores)
    ]
    [alert] = feed(evaluator, store, Stream.RATINGS, events)
    assert alert.rule == "agent-low-average"
    assert alert.key == "a-1"
    assert alert.values["responses"] == 5
    assert alert.values["average"] == pytest.approx(2.4)
    assert alert.values["window_start"] == "2026-11-23T12:00:00+00:00"
    assert alert.values["window_end"] == "2026-11-23T13:00:00+00:00"
    assert alert.event["id"] == "r-4"
    assert alert.id == alert_id("agent-low-average", f"a-1@{int(T0.timestamp())}")


def test_groups_are_kept_apart_and_min_sample_is_respected(tmp_path: Path) -> None:
    evaluator, store = load(tmp_path, rule=AGENT_AVERAGE)
    events = [
        rating(id=f"r-{n}", rating=1, agent={"id": f"a-{n % 2}"}, time=at(n)) for n in range(9)
    ]
    # a-0 gets 5 ratings (n = 0, 2, 4, 6, 8), a-1 only 4.
    [alert] = feed(evaluator, store, Stream.RATINGS, events)
    assert alert.key == "a-0"


def test_the_next_window_can_fire_again(tmp_path: Path) -> None:
    evaluator, store = load(tmp_path, rule=AGENT_AVERAGE)
    events = [rating(id=f"r-{n}", rating=1, time=at(n * 5)) for n in range(24)]  # two hours
    alerts = feed(evaluator, store, Stream.RATINGS, events)
    assert [alert.values["window_start"] for alert in alerts] == [
        "2026-11-23T12:00:00+00:00",
        "2026-11-23T13:00:00+00:00",
    ]


TEAM_NEGATIVES = """\
name: team-negatives
source: ratings
where: rating <= 2
group_by: team
window: {size: 15m, step: 5m, grace: 2m}
aggregates:
  negatives: count()
condition: negatives > 3
"""


def test_hopping_windows_alert_once_per_event_even_when_several_windows_hold(
    tmp_path: Path,
) -> None:
    evaluator, store = load(tmp_path, rule=TEAM_NEGATIVES)
    events = [rating(id=f"r-{n}", rating=1, time=at(1 + n * 0.5)) for n in range(6)]
    events.insert(2, rating(id="r-good", rating=5, time=at(1.5)))  # filtered out by `where`
    alerts = feed(evaluator, store, Stream.RATINGS, events)
    # The 4th negative makes all three overlapping windows hold at once: one alert, for the
    # oldest; the 5th and 6th find every window already fired.
    assert [alert.event["id"] for alert in alerts] == ["r-3"]
    assert alerts[0].values["window_start"] == (T0 - timedelta(minutes=10)).isoformat()
    assert alerts[0].values["negatives"] == 4


def test_late_events_count_within_grace_and_are_dropped_after_it(tmp_path: Path) -> None:
    evaluator, store = load(tmp_path, rule=TEAM_NEGATIVES.replace("step: 5m, ", ""))
    events = [rating(id=f"r-{n}", rating=1, time=at(n)) for n in range(3)]  # window 12:00-12:15
    events.append(rating(id="r-next", rating=1, time=at(16)))  # next window; 12:00 has 1 min grace
    events.append(rating(id="r-late-ok", rating=1, time=at(14)))  # 12:00-12:15 -> 4 negatives
    assert [alert.event["id"] for alert in feed(evaluator, store, Stream.RATINGS, events)] == [
        "r-late-ok"
    ]
    evaluator, store = load(tmp_path, rule=TEAM_NEGATIVES.replace("step: 5m, ", ""))
    events[3] = rating(id="r-much-later", rating=1, time=at(18))  # 3 min after 12:15: too late
    assert feed(evaluator, store, Stream.RATINGS, events) == []
    assert evaluator.stats.late_events["team-negatives"] == 1


EVERY_AGGREGATE = """\
name: everything
source: interactions
group_by: queue
window: {size: 1d}
aggregates:
  calls: count()
  fast: count_if(wait_seconds <= 20.0)
  waited: sum(wait_seconds)
  average_wait: avg(wait_seconds)
  shortest: min(wait_seconds)
  longest: max(wait_seconds)
  agents: distinct(agent.id)
min_sample: 4
condition: calls >= 4
"""


def test_every_aggregate_is_computed(tmp_path: Path) -> None:
    evaluator, store = load(tmp_path, rule=EVERY_AGGREGATE)
    waits = [5.0, 30.0, 20.0, 45.0]
    events = [
        interaction(id=f"i-{n}", wait_seconds=w, agent={"id": f"a-{n % 3}"}, time=at(n))
        for n, w in enumerate(waits)
    ]
    [alert] = feed(evaluator, store, Stream.INTERACTIONS, events)
    assert alert.values | {"window_start": None, "window_end": None} == {
        "calls": 4,
        "fast": 2,
        "waited": 100.0,
        "average_wait": 25.0,
        "shortest": 5.0,
        "longest": 45.0,
        "agents": 3,
        "window_start": None,
        "window_end": None,
    }


def test_nps_ignores_ratings_without_an_nps_answer(tmp_path: Path) -> None:
    rule = """\
name: channel-nps
source: ratings
group_by: channel
window: {size: 1d}
aggregates:
  answers: count()
  score: nps(nps)
condition: answers >= 5 && score < 0.0
"""
    evaluator, store = load(tmp_path, rule=rule)
    answers = [10, 9, 3, None, 6]  # 2 promoters, 2 detractors of 4 answers -> 0; then one more
    events = [rating(id=f"r-{n}", nps=v, rating=4, time=at(n)) for n, v in enumerate(answers)]
    assert feed(evaluator, store, Stream.RATINGS, events) == []
    [alert] = feed(evaluator, store, Stream.RATINGS, [rating(id="r-9", nps=0, time=at(9))])
    assert alert.values["score"] == pytest.approx(-20.0)


def test_an_event_without_the_grouping_field_is_a_counted_miss(tmp_path: Path) -> None:
    rule = AGENT_AVERAGE.replace("agent.id", "customer.tier")
    evaluator, store = load(tmp_path, rule=rule)
    assert feed(evaluator, store, Stream.RATINGS, [rating(rating=1)]) == []  # no tier
    assert evaluator.stats.rule_misses["agent-low-average"] == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", 3600.0),
        ("15m", 900.0),
        ("7d", 604800.0),
        ("30s", 30.0),
        (90, 90.0),
        ("1h30m", 5400.0),  # as everywhere else a duration is written (`alert_engine.durations`)
        ("PT15M", 900.0),
        ("2w", 1209600.0),
        ("90", 90.0),
    ],
)
def test_durations(text: str | int, expected: float) -> None:
    assert window_seconds(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", "a duration must be greater than zero"),
        ("91d", "a duration may be at most 90 days"),
        ("1.5m", "write durations as 30s, 5m, 1h30m, 1d, 1w"),
        (True, "write durations as 30s, 5m, 1h30m, 1d, 1w"),
    ],
)
def test_window_durations_out_of_bounds_are_refused(text: object, expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        window_seconds(text)


def test_a_windows_shape_keeps_its_name_whatever_the_spelling() -> None:
    # The shape names the stored state: `90m` and `1h30m` are one shape, named as before.
    assert WindowSpec(size="1h30m", step="15m").shape == WindowSpec(size="90m", step=900).shape
    assert WindowSpec(size="1h30m", step="15m").shape == "90m-every-15m"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("{size: 1h}", "{size: 0m}"), "4:16: window.size: a duration must be greater than zero"),
        (("{size: 1h}", "{size: -5m}"), "not a valid duration string: '-5m'"),
        (("{size: 1h}", "{size: 1h, step: 2h}"), "step must not be larger than size"),
        (("{size: 1h}", "{size: 1h, stp: 5m}"), "unknown key 'window.stp' (did you mean 'step'?"),
        (("avg(rating)", "median(rating)"), "7:12: aggregate 'average': unknown aggregate"),
        (("avg(rating)", "avg(ratng)"), "reads unknown field(s) ratng"),
        (("avg(rating)", "avg(rating <)"), "argument of avg does not compile"),
        (("average < 3.0", "rating < 3"), "reads rating, which is not an aggregate of this rule"),
        (("group_by: agent.id\n", ""), "needs group_by, window and aggregates; missing group_by"),
        (("agent.id", "agent.idd"), None),  # nested keys of an object are not checked at load
    ],
)
def test_bad_windowed_rules_are_rejected_at_load(
    tmp_path: Path, change: tuple[str, str], expected: str | None
) -> None:
    (tmp_path / "bad.yaml").write_text(AGENT_AVERAGE.replace(*change))
    if expected is None:
        load_ruleset(tmp_path)
        return
    with pytest.raises(RulesetError) as caught:
        load_ruleset(tmp_path)
    [problem] = [str(problem) for problem in caught.value.problems]
    assert expected in problem


def test_where_and_min_sample_belong_to_windowed_rules_only(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "name: x\nsource: ratings\ncondition: rating <= 2\nmin_sample: 3\n"
    )
    with pytest.raises(RulesetError, match="min_sample only apply to windowed rules"):
        load_ruleset(tmp_path)


def counting_rule(name: str, threshold: int, extra: str = "") -> str:
    """Rules that differ only by name and condition count the same events the same way."""
    return f"""\
  - name: {name}
    source: ratings
    group_by: team
    window: {{size: 1h}}
    aggregates: {{responses: count(), low: count_if(rating <= 2)}}
    condition: responses >= {threshold}{extra}
"""


def load_rules(tmp_path: Path, *rules: str) -> Evaluator:
    for old in tmp_path.glob("*.yaml"):
        old.unlink()
    (tmp_path / "rules.yaml").write_text("rules:\n" + "".join(rules))
    return Evaluator(load_ruleset(tmp_path), max_event_bytes=65536)


def test_rules_sharing_window_state_fire_exactly_as_each_rule_alone(tmp_path: Path) -> None:
    import random

    rules = [
        counting_rule("five", 5),
        counting_rule("seven-low", 7, " && low >= 2"),
        counting_rule("nine", 9),
        # Two rules sharing the guard `low >= 2`: skipped together while it is false.
        counting_rule("low-six", 6).replace("responses >= 6", "low >= 2 && responses >= 6"),
        counting_rule("low-eight", 8).replace("responses >= 8", "low >= 2 && responses >= 8"),
        counting_rule("hopping", 4).replace("{size: 1h}", "{size: 30m, step: 10m}"),
        counting_rule("filtered", 3).replace(
            "    aggregates", "    where: rating >= 3\n    aggregates"
        ),
    ]
    rng = random.Random(3)
    events = [
        rating(
            id=f"r-{n}",
            rating=rng.randint(1, 5),
            team=rng.choice(["t-1", "t-2"]),
            time=at(n * rng.uniform(0.5, 4)),
        )
        for n in range(150)
    ]
    (tmp_path / "all").mkdir()
    together = load_rules(tmp_path / "all", *rules)
    store = MemoryWindowStore(together.ruleset.windows())
    alerts = feed(together, store, Stream.RATINGS, events)
    for n, rule in enumerate(rules):
        directory = tmp_path / f"alone-{n}"
        directory.mkdir()
        alone = load_rules(directory, rule)
        alone_store = MemoryWindowStore(alone.ruleset.windows())
        expected = feed(alone, alone_store, Stream.RATINGS, events)
        name = alone.ruleset.rules[0].name
        assert expected, f"{name} never fired: the comparison would prove nothing"
        # All but the firing time and the ruleset version (of one rule here, of five there).
        assert [same(a) for a in alerts if a.rule == name] == [same(a) for a in expected]


def same(alert: Alert) -> dict[str, object]:
    return alert.model_dump(exclude={"fired_at", "ruleset_version"})


def test_a_rule_added_by_a_reload_counts_from_then_and_one_taken_out_keeps_its_count(
    tmp_path: Path,
) -> None:
    ten, five = counting_rule("ten", 10), counting_rule("five", 5)
    evaluator = load_rules(tmp_path, ten, five)
    store = MemoryWindowStore(evaluator.ruleset.windows())
    events = iter(rating(id=f"r-{n}", rating=4, team="t-1", time=at(n)) for n in range(20))

    def next_alerts(count: int) -> list[tuple[str, int]]:
        found = feed(evaluator, store, Stream.RATINGS, [next(events) for _ in range(count)])
        return [(alert.rule, alert.values["responses"]) for alert in found]

    assert next_alerts(2) == []
    evaluator.ruleset = load_rules(tmp_path, ten).ruleset  # `five` taken out at 2 events
    assert next_alerts(3) == []
    evaluator.ruleset = load_rules(tmp_path, ten, five).ruleset  # back: it counted 2, not 5
    assert next_alerts(2) == []
    assert next_alerts(1) == [("five", 5)]
    evaluator.ruleset = load_rules(
        tmp_path, ten, five, counting_rule("three", 3)
    ).ruleset  # new: starts at 0 while `ten` has 8
    assert next_alerts(2) == [("ten", 10)]
    assert next_alerts(1) == [("three", 3)]


def test_window_state_written_as_one_state_per_rule_is_read_on(tmp_path: Path) -> None:
    evaluator, store = load(tmp_path, rule=AGENT_AVERAGE)
    [rule] = evaluator.ruleset.rules
    first = rating(id="r-5", rating=1, agent={"id": "a-1"}, time=at(30))
    shape = "1h"
    window = window_ranges(store.window(shape), datetime.fromisoformat(at(30)).timestamp())[0]
    # Four ratings of 1 counted by an earlier version, which kept one state per rule.
    store.set(
        shape,
        state_key("agent.id", "a-1"),
        window,
        {rule.state_id: {"n": 4, "a": [4, [4.0, 4]], "fired": False}},
    )
    [alert] = feed(evaluator, store, Stream.RATINGS, [first])
    assert alert.values["responses"] == 5
    assert alert.values["average"] == 1.0


@given(
    size_steps=st.sampled_from([(60, 60), (900, 60), (3600, 300), (604800, 86400)]),
    step_number=st.integers(min_value=0, max_value=30_000_000),
    milliseconds=st.lists(st.integers(min_value=0, max_value=86_400_000), min_size=2),
)
def test_every_moment_of_one_step_falls_in_the_same_windows(
    size_steps: tuple[int, int], step_number: int, milliseconds: list[int]
) -> None:
    # The evaluator keeps an event's windows, by `time // step`, for the next events.
    size, step = size_steps
    window = WindowSpec(size=size, step=step).faust_window(0.0)
    start = step_number * step
    moments = [start + (ms % (step * 1000)) / 1000 for ms in milliseconds]
    assert all(moment // step == step_number for moment in moments)
    first = window_ranges(window, moments[0])
    assert all(window_ranges(window, moment) == first for moment in moments)
    assert len(first) == size // step


@given(
    st.sampled_from([1, 30, 60, 300, 900, 3600]),
    st.sampled_from([1, 2, 4, 12]),
    # Up to 2033: beyond 2**31 seconds Faust's compiled maths overflows (the bug replaced here).
    st.one_of(st.floats(0, 2e9, allow_nan=False), st.integers(0, 2_000_000_000).map(float)),
)
def test_window_ranges_are_fausts_own(step: int, windows: int, timestamp: float) -> None:
    from faust.windows import HoppingWindow

    window = HoppingWindow(step * windows, step, expires=60)
    expected = [(float(start), float(end)) for start, end in window.ranges(timestamp)]
    assert window_ranges(window, timestamp) == expected


def test_an_event_dated_in_year_9999_falls_in_as_many_windows_as_any_other() -> None:
    # Faust's compiled range maths overflowed a C int here and built billions of windows.
    window = WindowSpec(size=3600, step=300).faust_window(60)
    year_9999 = datetime(9999, 12, 31, 12, tzinfo=UTC).timestamp()
    ranges = window_ranges(window, year_9999)
    assert len(ranges) == 12
    assert all(start <= year_9999 <= end for start, end in ranges)

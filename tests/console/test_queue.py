"""The console queue's selection without a worker: each filter keeps exactly the rows it names,
the sort orders them, and the pages together hold every kept row once (property-tested against
a plain re-statement of the filter); a filter that is not one is refused, naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_engine.cases import CaseState
from alert_engine.console.queue import (
    PER_PAGE,
    SEVERITY_RANK,
    FilterError,
    QueueFilter,
    QueueRow,
    age_text,
    select,
)
from alert_engine.rules.spec import Severity

ME = "member:ana"
NOW = 1_800_000_000.0

rows = st.builds(
    QueueRow,
    alert_id=st.uuids().map(lambda u: f"al-{u.hex[:12]}"),
    rule=st.sampled_from(["negative-rating", "vip-unhappy"]),
    severity=st.sampled_from(list(Severity)),
    route=st.sampled_from(["default", "vip"]),
    team=st.sampled_from(["orders", "Billing", ""]),
    customer=st.just("Jordan Lee"),
    rating=st.one_of(st.none(), st.integers(1, 5)),
    state=st.sampled_from([CaseState.OPEN, CaseState.CLAIMED]),
    state_label=st.just("Open"),
    claimed_by=st.sampled_from([None, ME, "member:bo", "U0SLACK"]),
    delivered_at=st.floats(NOW - 10 * 86400, NOW),
    age_seconds=st.just(0.0),
    sla=st.just(""),
    sla_breached=st.booleans(),
).map(lambda row: row.__class__(**{**row.__dict__, "age_seconds": NOW - row.delivered_at}))

filters = st.builds(
    QueueFilter,
    show=st.sampled_from(["open", "unclaimed", "mine"]),
    team=st.sampled_from([None, "orders", "billing"]),
    route=st.sampled_from([None, "vip"]),
    rule=st.sampled_from([None, "vip-unhappy"]),
    severity=st.sampled_from([None, *Severity]),
    min_age_minutes=st.sampled_from([None, 0, 60, 60 * 24]),
    sort=st.sampled_from(["oldest", "newest", "severity"]),
    sla_breached=st.booleans(),
)


def kept_by_hand(row: QueueRow, chosen: QueueFilter) -> bool:
    return (
        {"open": True, "unclaimed": row.state is CaseState.OPEN, "mine": row.claimed_by == ME}[
            chosen.show
        ]
        and (chosen.team is None or row.team.lower() == chosen.team.lower())
        and (chosen.route is None or row.route == chosen.route)
        and (chosen.rule is None or row.rule == chosen.rule)
        and (chosen.severity is None or row.severity == chosen.severity)
        and (not chosen.sla_breached or row.sla_breached)
        and (
            chosen.min_age_minutes is None or NOW - row.delivered_at >= chosen.min_age_minutes * 60
        )
    )


@given(st.lists(rows, max_size=160, unique_by=lambda row: row.alert_id), filters)
def test_the_pages_hold_each_row_the_filter_keeps_once_in_order(
    all_rows: list[QueueRow], chosen: QueueFilter
) -> None:
    first = select(all_rows, chosen, ME)
    shown: list[QueueRow] = list(first.rows)
    for page in range(2, first.pages + 1):
        later = select(all_rows, chosen.model_copy(update={"page": page}), ME)
        assert later.page == page and later.total == first.total
        assert len(later.rows) <= PER_PAGE
        shown.extend(later.rows)
    expected = {row.alert_id for row in all_rows if kept_by_hand(row, chosen)}
    assert [row.alert_id for row in shown if row.alert_id in expected] == [
        row.alert_id for row in shown
    ]
    assert len(shown) == len(expected) == first.total
    assert {row.alert_id for row in shown} == expected
    keys: Callable[[QueueRow], Any] = {
        "oldest": lambda row: row.delivered_at,
        "newest": lambda row: -row.delivered_at,
        "severity": lambda row: (-SEVERITY_RANK[row.severity], row.delivered_at),
    }[chosen.sort]
    assert [keys(row) for row in shown] == sorted(keys(row) for row in shown)


def test_a_page_past_the_last_shows_the_last() -> None:
    chosen = QueueFilter(page=99)
    assert select([], chosen, ME).page == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"show": "everything"}, "show"),
        ({"severity": "urgent"}, "severity"),
        ({"page": "0"}, "page"),
        ({"min_age_minutes": "-5"}, "min_age_minutes"),
        ({"min_age_minutes": "soon"}, "min_age_minutes"),
        ({"sort": "random"}, "sort"),
    ],
)
def test_a_filter_that_is_not_one_is_refused_naming_its_field(
    query: dict[str, str], field: str
) -> None:
    with pytest.raises(FilterError, match=field):
        QueueFilter.from_query(query)


def test_a_filter_reads_back_from_its_own_query() -> None:
    chosen = QueueFilter(
        show="mine", team="orders", severity=Severity.HIGH, sla_breached=True, page=3
    )
    assert chosen.query() == {
        "show": "mine",
        "team": "orders",
        "severity": "high",
        "sla_breached": "true",
        "page": "3",
    }
    assert QueueFilter.from_query(chosen.query()) == chosen
    # Empty fields (a form sent as is) are no filter; unknown ones are ignored.
    assert QueueFilter.from_query({"team": " ", "poll": "2"}) == QueueFilter()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(59, "0 min"), (3599, "59 min"), (3600, "1 h 00 min"), (200_000, "2 d 7 h")],
)
def test_an_age_reads_in_minutes_hours_or_days(seconds: int, text: str) -> None:
    assert age_text(seconds) == text

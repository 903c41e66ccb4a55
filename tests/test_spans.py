"""Joining spans: what both the business calendar and the log masking rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from alert_engine.spans import merged


def test_overlapping_and_touching_spans_join_and_the_rest_stay_apart_in_order() -> None:
    assert merged([(10, 12), (1, 3), (2, 5), (5, 6), (8, 9)]) == [(1, 6), (8, 9), (10, 12)]


def test_times_join_as_numbers_do() -> None:
    nine = datetime(2026, 1, 5, 9, tzinfo=UTC)
    hour = timedelta(hours=1)
    spans = [(nine + 2 * hour, nine + 3 * hour), (nine, nine + 2 * hour)]
    assert merged(spans) == [(nine, nine + 3 * hour)]


spans_of = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 10)).map(lambda pair: (pair[0], sum(pair))),
    max_size=12,
)


@given(spans_of)
def test_the_joined_spans_cover_the_same_points_and_neither_overlap_nor_touch(
    spans: list[tuple[int, int]],
) -> None:
    joined = merged(spans)

    def covered(parts: list[tuple[int, int]]) -> set[float]:
        # Half-points too, so that (1, 2) and (3, 4) are seen not to cover 2.5.
        return {point / 2 for start, end in parts for point in range(2 * start, 2 * end + 1)}

    assert covered(joined) == covered(spans)
    assert all(end < start for (_, end), (start, _) in pairwise(joined))

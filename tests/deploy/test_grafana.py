"""The Grafana dashboard (deploy/grafana/alert-engine.json): every metric its PromQL reads is one a
real worker serves at /metrics, with the labels it groups by, and each figure issue 18 asks for
has a panel."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import Endpoints
from tests.engine import Engine, encode_all
from tests.factories import rating

ROOT = Path(__file__).parents[2]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "alert-engine.json").read_text())
# The figures the dashboard must show, each with the metric its panel reads.
FIGURES = {
    "events in": "alert_engine_events_in_total",
    "events rejected by reason": "alert_engine_events_rejected_total",
    "rule matches": "alert_engine_rule_matches_total",
    "consumer lag": "alert_engine_consumer_lag",
    "delivery latency histogram": "alert_engine_delivery_latency_seconds_bucket",
    "failures by destination": "alert_engine_alerts_failed_total",
    "open cases": "alert_engine_cases_open",
    "surveys sent": "alert_engine_surveys_sent_total",
    "surveys answered": "alert_engine_surveys_answered_total",
}
# Labels Prometheus adds to every scraped series, and the histogram's bucket bound.
TARGET_LABELS = {"job", "instance", "le"}
# Grafana's own variables, as a value PromQL parses.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def queries() -> Iterator[tuple[str, str]]:
    for panel in panels(DASHBOARD["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def parse(expr: str) -> Any:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def walk(node: Any) -> Iterator[Any]:
    yield node
    for child in ("lhs", "rhs", "expr", "param", "vector_selector"):
        value = getattr(node, child, None)
        if value is not None and not isinstance(value, (int, float, str)):
            yield from walk(value)
    for arg in getattr(node, "args", None) or []:
        yield from walk(arg)


def selectors(expr: str) -> set[str]:
    return {
        node.name
        for node in walk(parse(expr))
        if isinstance(node, promql_parser.VectorSelector) and node.name is not None
    }


def grouped_by(expr: str) -> Iterator[tuple[set[str], set[str]]]:
    """(labels, metrics): each `by (...)` of an aggregation and the metrics it aggregates."""
    for node in walk(parse(expr)):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels = set(re.findall(r"\w+", str(node.modifier).removeprefix("by")))
            if str(node.modifier).startswith("by"):
                yield labels, selectors(node.expr.prettify())


def test_every_query_parses_and_each_figure_asked_for_has_a_panel() -> None:
    by_panel: dict[str, set[str]] = {}
    for title, expr in queries():
        by_panel.setdefault(title, set()).update(selectors(expr))
    for figure, metric in FIGURES.items():
        assert any(metric in metrics for metrics in by_panel.values()), f"no panel for {figure}"
    # Every panel has a query, a title and a description.
    for panel in panels(DASHBOARD["panels"]):
        if panel["type"] != "row":
            assert panel["targets"] and panel["title"] and panel["description"], panel["title"]


def test_the_metric_name_reader_sees_through_functions_and_aggregations() -> None:
    # A check of the reader the test below relies on: a name it missed would go unchecked.
    expr = (
        'histogram_quantile(0.99, sum by (le, destination) (rate(a_bucket{job=~"$job"}'
        "[$__rate_interval]))) / on () topk(3, b) + max_over_time(c[5m:1m])"
    )
    assert selectors(expr) == {"a_bucket", "b", "c"}
    assert list(grouped_by(expr)) == [({"le", "destination"}, {"a_bucket"})]


def scrape(url: str) -> tuple[set[str], dict[str, set[str]]]:
    """The series names /metrics serves (a family without samples yet by the names its type
    gives), and the label names seen on each."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


@pytest.mark.integration
def test_every_metric_the_dashboard_reads_is_served_by_a_real_worker(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    worker = engine.worker().start()
    try:
        engine.produce(
            engine.kafka.ratings_topic,
            [*encode_all([rating(id="r-neg", rating=1), rating(id="r-pos", rating=5)]), b"{"],
        )
        engine.wait_for(lambda: len(engine.delivered()) >= 1)

        def lag_and_rejections_have_samples() -> bool:
            _, labels = scrape(worker.url)
            return {"alert_engine_consumer_lag", "alert_engine_events_rejected_total"} <= set(
                labels
            )

        engine.wait_for(lag_and_rejections_have_samples)
        names, labels = scrape(worker.url)
        with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        worker.stop()

    for title, expr in queries():
        missing = selectors(expr) - names
        assert not missing, f"panel {title!r} reads {missing}, which /metrics does not serve"
        for grouping, metrics in grouped_by(expr):
            for metric in metrics & set(labels):
                unknown = grouping - labels[metric] - TARGET_LABELS
                assert not unknown, f"panel {title!r} groups {metric} by {unknown}"
    # The new gauges carry the figures the panels show: one open case (the delivered alert),
    # and a lag for each consumed ratings partition.
    assert "\nalert_engine_cases_open 1.0\n" in text
    ratings_lags = re.findall(
        rf'alert_engine_consumer_lag{{partition="\d+",topic="{engine.kafka.ratings_topic}"}} ',
        text,
    )
    assert len(ratings_lags) >= 1

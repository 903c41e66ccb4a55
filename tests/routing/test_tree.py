from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alert_engine.alerts import Alert, alert_id
from alert_engine.events import Stream
from alert_engine.routing import Routing, RoutingError, load_routing
from alert_engine.rules.spec import Severity
from tests.factories import rating

ROUTES = """\
destinations:
  outbox: {type: outbox}
  orders-slack: {type: slack, channel: C0ORDERS}
  billing-slack: {type: slack, channel: C0BILLING}
  vip-email: {type: email, to: [vip-desk@example.com]}
  critical-slack: {type: slack, channel: C0CRITICAL}
route:
  destinations: [outbox]
  routes:
    - name: vip
      matchers: ["customer.tier = gold"]
      destinations: [vip-email]
      continue: true
    - name: orders
      matchers: ["team = orders"]
      destinations: [orders-slack]
      routes:
        - name: orders-critical
          matchers: ["severity =~ high|critical", "channel != email"]
          destinations: [critical-slack]
    - name: billing
      matchers: ["team = billing", "labels.product !~ legacy.*"]
      destinations: [billing-slack]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def alert(
    severity: Severity = Severity.HIGH, labels: dict[str, str] | None = None, **event: Any
) -> Alert:
    now = datetime.now(UTC)
    return Alert(
        id=alert_id("negative-rating", "r-1"),
        rule="negative-rating",
        severity=severity,
        route="default",
        key="r-1",
        stream=Stream.RATINGS,
        event=rating(**event),
        values={"rating": 1},
        event_time=now,
        fired_at=now,
        ruleset_version="test",
        labels=labels or {},
    )


@pytest.fixture
def routing(tmp_path: Path) -> Routing:
    return load_routing(write(tmp_path, ROUTES))


def test_an_alert_takes_the_deepest_matching_route(routing: Routing) -> None:
    [found] = routing.match(alert(team="orders", channel="chat"))
    assert found.path == ("root", "orders", "orders-critical")
    assert routing.destinations_for(alert(team="orders", channel="chat")) == ["critical-slack"]


def test_a_route_whose_children_do_not_match_ends_there(routing: Routing) -> None:
    low = alert(severity=Severity.LOW, team="orders")
    assert routing.destinations_for(low) == ["orders-slack"]
    by_email = alert(team="orders", channel="email")
    assert routing.destinations_for(by_email) == ["orders-slack"]


def test_continue_lets_an_alert_take_the_next_matching_sibling_too(routing: Routing) -> None:
    gold = alert(team="orders", customer={"id": "c-1", "tier": "gold"})
    assert [m.path[-1] for m in routing.match(gold)] == ["vip", "orders-critical"]
    assert routing.destinations_for(gold) == ["vip-email", "critical-slack"]


def test_unmatched_alerts_take_the_default_route(routing: Routing) -> None:
    assert routing.destinations_for(alert(team="returns")) == ["outbox"]


def test_regex_matchers_on_labels_match_the_whole_value(routing: Routing) -> None:
    assert routing.destinations_for(alert(team="billing")) == ["billing-slack"]
    assert routing.destinations_for(alert(team="billing", labels={"product": "legacy-x"})) == [
        "outbox"
    ]
    # `legacy.*` must match the whole value: "not-legacy" is not excluded.
    assert routing.destinations_for(alert(team="billing", labels={"product": "not-legacy"})) == [
        "billing-slack"
    ]


def test_every_problem_in_a_routing_file_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
destinations:
  outbox: {type: outbox}
  mail: {type: email, to: [not-an-address]}
  chat: {type: carrier-pigeon}
route:
  destinations: [outbox]
  routes:
    - matchers: ["team == orders"]
      destinations: [nowhere]
    - matchers: ["team =~ ("]
      contnue: true
""",
    )
    with pytest.raises(RoutingError) as raised:
        load_routing(path)
    messages = [str(problem) for problem in raised.value.problems]
    assert any(m.startswith(f"{path}:3:") and "destinations.mail.to.0" in m for m in messages)
    assert any(m.startswith(f"{path}:4:") and "carrier-pigeon" in m for m in messages)
    assert any(m.startswith(f"{path}:11:") and "unknown key" in m for m in messages), messages


def test_matchers_and_destination_names_are_checked_after_the_schema(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
destinations:
  outbox: {type: outbox}
route:
  destinations: [outbox]
  routes:
    - matchers: ["team =~ ("]
      destinations: [nowhere]
""",
    )
    with pytest.raises(RoutingError) as raised:
        load_routing(path)
    messages = [str(problem) for problem in raised.value.problems]
    assert messages[0].startswith(f"{path}:6:") and "invalid regular expression" in messages[0]
    assert messages[1].startswith(f"{path}:7:")
    assert "unknown destination 'nowhere' (defined: outbox)" in messages[1]


EXAMPLE = Path(__file__).parents[2] / "deploy" / "routing.example.yaml"


def test_routes_test_shows_the_path_and_destinations_an_alert_takes() -> None:
    from click.testing import CliRunner

    from alert_engine.cli.main import main

    result = CliRunner().invoke(
        main, ["routes", "test", "--file", str(EXAMPLE), "team=orders", "customer.tier=gold"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "root > vip",
        "  vip-desk: email to vip-desk@example.com",
        "root > orders",
        "  recovery-orders: slack channel C0RECOVERY",
    ]
    low = CliRunner().invoke(
        main, ["routes", "test", "--file", str(EXAMPLE), "team=billing", "severity=low"]
    )
    assert low.output.splitlines() == ["root", "  outbox: local outbox"]


def test_routes_check_rejects_a_broken_file_with_its_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from alert_engine.cli.main import main

    path = write(tmp_path, "destinations: {}\nroute:\n  destinations: [slack]\n")
    result = CliRunner().invoke(main, ["routes", "check", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3:" in result.output and "unknown destination 'slack'" in result.output


def test_email_templates_are_compiled_at_load_and_errors_name_the_template_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "leads.txt.j2").write_text("Alert\n{{ alert.title }\n")
    (tmp_path / "leads.html.j2").write_text("<p>{{ alert.comment }}</p>\n")
    body = """\
destinations:
  leads: {type: email, to: [a@example.com], text_template: leads.txt.j2, html_template: %s}
route:
  destinations: [leads]
"""
    with pytest.raises(RoutingError) as raised:
        load_routing(write(tmp_path, body % "leads.html.j2"))
    [problem] = raised.value.problems
    assert str(problem).startswith(f"{tmp_path / 'leads.txt.j2'}:2:1: template syntax error")

    (tmp_path / "leads.txt.j2").write_text("Alert: {{ alert.title }}\n")
    routing = load_routing(write(tmp_path, body % "leads.html.j2"))
    templates = routing.email_templates["leads"]
    from alert_engine.channels.presentation import AlertView

    view = AlertView.of(alert(comment="<i>x</i>"))
    assert templates.text.render(view) == "Alert: Jordan Lee rated Priya Nair 1★\n"
    assert templates.html.render(view) == "<p>&lt;i&gt;x&lt;/i&gt;</p>"


def test_a_slack_template_with_a_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
destinations:
  team:
    type: slack
    channel: C0TEAM
    template: "{{ alert.team "
route:
  destinations: [team]
""",
    )
    with pytest.raises(RoutingError) as raised:
        load_routing(path)
    [problem] = raised.value.problems
    assert str(problem).startswith(f"{path}:5:15: template syntax error")

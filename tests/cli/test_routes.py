"""Where the engine means something else than Alertmanager on purpose, `routes check` says so
about a file that looks written for Alertmanager's meaning; where the syntax is Alertmanager's
and the meaning can be the same, it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from alert_engine.cli.main import main
from alert_engine.routing import RoutingError, load_routing
from tests.routing.test_tree import EXAMPLE, alert, write

WRITTEN_FOR_ALERTMANAGER = """\
destinations:
  outbox: {type: outbox}
  leads: {type: email, to: [leads@example.com]}
route:
  destinations: [outbox]
  continue: true
  repeat_interval: 4h
  routes:
    - matchers: ["team = 'orders'"]
      group_wait: 1m
    - matchers: ["alertname = Spike"]
      group_by: []
    - matchers: ["team = billing"]
      group_by: ['...']
    - matchers: ["team = returns"]
      group_by: [team, channel, team]
      routes:
        - matchers: ["channel = chat"]
          group_interval: 10m
"""


def check(path: Path, *options: str) -> Result:
    return CliRunner().invoke(main, ["routes", "check", "--file", str(path), *options])


def test_routes_check_warns_where_the_file_looks_written_for_alertmanagers_meaning(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, WRITTEN_FOR_ALERTMANAGER)
    result = check(path)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if ": warning: " in line]
    where = {line.split(": warning: ")[0].removeprefix(f"{path}:"): line for line in warnings}
    assert sorted(where, key=lambda at: int(at.split(":")[0])) == [
        "6:13",
        "7:20",
        "9:18",
        "10:19",
        "11:18",
        "12:17",
        "14:17",
        "16:33",
    ], warnings
    assert "continue" in where["6:13"] and "Alertmanager refuses it" in where["6:13"]
    assert "repeat_interval" in where["7:20"] and "escalate_after" in where["7:20"]
    assert "single quotes" in where["9:18"]
    assert "each alert on its own card" in where["10:19"] and "group_by" in where["10:19"]
    assert "`rule`" in where["11:18"]
    assert "each alert on its own card" in where["12:17"] and "one group" in where["12:17"]
    assert "each alert on its own card" in where["14:17"]
    assert "'team' twice" in where["16:33"]
    assert result.output.splitlines()[-1] == f"{path}: OK, 2 destination(s), 8 warning(s)"


def test_routes_check_strict_fails_on_warnings(tmp_path: Path) -> None:
    assert check(write(tmp_path, WRITTEN_FOR_ALERTMANAGER), "--strict").exit_code == 1


def test_the_example_file_has_no_warnings() -> None:
    result = check(EXAMPLE, "--strict")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


ROUTES = """\
destinations: {outbox: {type: outbox}, orders: {type: slack, channel: C0ORDERS}}
route:
  destinations: [outbox]
  group_by: [team]
  routes:
    - matchers: ["team = orders"]
      destinations: [orders]
      group_by: %s
"""


def test_group_by_the_wildcard_delivers_each_alert_on_its_own_as_in_alertmanager(
    tmp_path: Path,
) -> None:
    # Before, `...` was read as a field no alert has: all of the route's alerts in one group.
    routing = load_routing(write(tmp_path, ROUTES % "['...']"))
    [found] = routing.match(alert(team="orders"))
    assert found.destinations == ("orders",)
    assert found.grouping is None


def test_group_by_takes_field_names_and_the_wildcard_alone(tmp_path: Path) -> None:
    for group_by, message in (
        ("['...', team]", "`...` stands alone"),
        ("['team name']", "'team name' is not a field name"),
        ("['']", "'' is not a field name"),
    ):
        path = write(tmp_path, ROUTES % group_by)
        with pytest.raises(RoutingError) as raised:
            load_routing(path)
        [problem] = raised.value.problems
        assert str(problem).startswith(f"{path}:8:") and message in str(problem), problem


def test_alertmanagers_route_keys_are_pointed_to_the_engines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "destinations: {outbox: {type: outbox}}\n"
        "route:\n  receiver: outbox\n  routes:\n    - match: {team: orders}\n",
    )
    with pytest.raises(RoutingError) as raised:
        load_routing(path)
    messages = [str(problem) for problem in raised.value.problems]
    assert any(
        m.startswith(f"{path}:3:3: unknown key 'route.receiver'") and "`destinations`" in m
        for m in messages
    ), messages
    assert any(
        m.startswith(f"{path}:5:7: unknown key 'route.routes.0.match'") and "`matchers`" in m
        for m in messages
    ), messages

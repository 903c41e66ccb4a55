"""Silences and inhibition, through the Deliverer on the real Redis."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.cli.main import main
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger
from alert_engine.delivery.inhibition import Inhibitor
from alert_engine.delivery.silences import SilenceStore
from alert_engine.routing import load_routing
from alert_engine.rules.spec import Severity
from devstack.stack import Endpoints
from tests.delivery.test_deliverer import Recorder
from tests.routing.test_tree import alert, write

ROUTING = """\
destinations:
  team: {type: outbox}
route:
  destinations: [team]
inhibit_rules:
  - source_matchers: ["rule = team-spike"]
    target_matchers: ["rule = negative-rating"]
    equal: [team]
    active_for: 600
"""


def make_deliverer(
    redis: Redis, unique: str, tmp_path: Path
) -> tuple[Deliverer, Recorder, SilenceStore]:
    routing = load_routing(write(tmp_path, ROUTING))
    team = Recorder("team")
    prefix = f"test-{unique}"
    silences = SilenceStore(redis, prefix)
    deliverer = Deliverer(
        {"team": team},
        DeliveryLedger(redis, prefix),
        routing=routing,
        silences=silences,
        inhibitor=Inhibitor(redis, prefix, routing.inhibit_rules),
    )
    return deliverer, team, silences


def rated(key: str, rule: str = "negative-rating", **event: Any) -> Alert:
    made = alert(**event)
    from alert_engine.alerts import alert_id

    return made.model_copy(update={"id": alert_id(rule, key), "key": key, "rule": rule})


async def test_a_silenced_alert_is_not_delivered_until_the_silence_ends(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    deliverer, team, silences = make_deliverer(redis, unique, tmp_path)
    silence = await silences.add(
        ["team = orders", "severity =~ high|critical"],
        datetime.now(UTC) + timedelta(hours=1),
        created_by="ops",
    )
    await deliverer.deliver(rated("r-1", team="orders"))
    await deliverer.deliver(rated("r-2", team="billing"))
    low = rated("r-3", team="orders").model_copy(update={"severity": Severity.LOW})
    await deliverer.deliver(low)
    assert team.sent == [rated("r-2").id, low.id]
    assert deliverer.stats.alerts_silenced[silence.id] == 1

    assert await silences.expire(silence.id)
    await deliverer.deliver(rated("r-4", team="orders"))
    assert team.sent[-1] == rated("r-4").id


async def test_a_team_spike_mutes_that_teams_per_agent_alerts_only(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    deliverer, team, _ = make_deliverer(redis, unique, tmp_path)
    before = rated("r-before", team="orders")
    spike = rated("spike", rule="team-spike", team="orders")
    during = rated("r-during", team="orders")
    other_team = rated("r-billing", team="billing")
    for each in (before, spike, during, other_team):
        await deliverer.deliver(each)
    assert team.sent == [before.id, spike.id, other_team.id]
    assert deliverer.stats.alerts_inhibited["inhibit_rules[0]"] == 1


def test_silences_are_added_listed_and_expired_from_the_command_line(
    stack: Endpoints, unique: str
) -> None:
    env = {"ALERT_ENGINE_REDIS_URL": stack.redis_url, "ALERT_ENGINE_REDIS_KEY_PREFIX": unique}
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["silence", "add", "-m", "team=orders", "--for", "30m", "--by", "ana", "--comment", "x"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[0]
    listed = runner.invoke(main, ["silence", "list"], env=env)
    assert silence_id in listed.output and "team=orders" in listed.output
    assert "by ana  x" in listed.output
    assert runner.invoke(main, ["silence", "expire", silence_id], env=env).exit_code == 0
    assert silence_id not in runner.invoke(main, ["silence", "list"], env=env).output
    bad = runner.invoke(main, ["silence", "add", "-m", "team =~ ("], env=env)
    assert bad.exit_code == 2 and "invalid regular expression" in bad.output

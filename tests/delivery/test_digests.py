"""Grouping alerts into digests: the Redis store through the Deliverer, and a real worker."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from alert_engine.alerts import Alert, alert_id
from alert_engine.channels import Digest
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger
from alert_engine.delivery.digests import Groups
from alert_engine.routing import load_routing
from devstack.stack import Endpoints
from tests.engine import Engine, encode_all
from tests.factories import rating
from tests.routing.test_tree import alert, write

ROUTING = """\
destinations:
  team: {type: outbox}
route:
  destinations: [team]
  group_by: [team]
  group_wait: 10
  group_interval: 60
"""


class DigestRecorder:
    def __init__(self) -> None:
        self.name = "team"
        self.digests: list[list[str]] = []
        self.single: list[str] = []

    async def send(self, sent: Alert) -> None:
        self.single.append(sent.id)

    async def send_digest(self, digest: Digest) -> None:
        self.digests.append([a.key for a in digest.alerts])


def keyed(key: str, team: str) -> Alert:
    made = alert(team=team)
    return made.model_copy(update={"id": alert_id("negative-rating", key), "key": key})


async def test_alerts_of_a_group_go_out_as_one_digest_after_group_wait(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    routing = load_routing(write(tmp_path, ROUTING))
    groups = Groups(redis, f"test-{unique}")
    team = DigestRecorder()
    deliverer = Deliverer(
        {"team": team}, DeliveryLedger(redis, f"test-{unique}"), routing=routing, groups=groups
    )
    start = datetime.now(UTC)
    for key, which in (("r-1", "orders"), ("r-2", "orders"), ("r-3", "billing")):
        assert await deliverer.deliver(keyed(key, which)) == []
    assert team.single == [] and team.digests == []
    assert await groups.take_due(start + timedelta(seconds=5)) == []

    due = await groups.take_due(start + timedelta(seconds=11))
    assert sorted(len(d.alerts) for d in due) == [1, 2]
    for digest in due:
        assert await deliverer.deliver_digest(digest) == []
        # A worker that died before marking the digest sent: taken again, not posted again.
        assert await deliverer.deliver_digest(digest) == []
        await groups.sent(digest, start + timedelta(seconds=11))
    assert sorted(sorted(keys) for keys in team.digests) == [["r-1", "r-2"], ["r-3"]]

    # A later alert of a group that was just sent waits for the group interval.
    await deliverer.deliver(keyed("r-4", "orders"))
    assert await groups.take_due(start + timedelta(seconds=40)) == []
    [late] = await groups.take_due(start + timedelta(seconds=72))
    assert [a.key for a in late.alerts] == ["r-4"] and late.group == {"team": "orders"}


@pytest.mark.integration
def test_a_worker_sends_a_burst_for_one_team_as_one_digest(
    stack: Endpoints, unique: str, tmp_path: Path
) -> None:
    engine = Engine(stack, unique, tmp_path)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.replace("group_wait: 10", "group_wait: 2"))
    engine.env["ALERT_ENGINE_ROUTING_FILE"] = str(routing)
    worker = engine.worker().start()
    try:
        burst = [rating(id=f"r-{n}", team="orders") for n in range(4)]
        engine.produce(engine.kafka.ratings_topic, encode_all([*burst, rating(id="r-x", team="x")]))
        engine.wait_for(lambda: len(engine.delivered()) == 5)
        from alert_engine.channels.outbox import read_outbox

        entries = read_outbox(engine.outbox)
        by_team = {entry["digest"]["group"]["team"]: entry for entry in entries}
        assert len(entries) == 2
        assert sorted(a["key"] for a in by_team["orders"]["alerts"]) == [f"r-{n}" for n in range(4)]
        assert [a["key"] for a in by_team["x"]["alerts"]] == ["r-x"]
    finally:
        worker.stop()

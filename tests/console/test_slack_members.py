"""Slack clicks by a Slack user mapped to a member (`slack_user` in the members file) act as
that member: the console's "mine" holds what she claimed in Slack, and the `cases` topic names
the member; an unmapped Slack user acts as the Slack user, as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from devstack.stack import Endpoints
from devstack.webclient import Credentials, SignedInClient, write_members_file
from standins.slack import SlackStandIn
from tests.engine import encode_all
from tests.factories import rating
from tests.system.test_slack_worker import ROUTING, click, slack_engine, status_of, wait_until

pytestmark = pytest.mark.integration

ANA = Credentials("ana", "ana's long password", "Ana Souza")


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


def test_a_mapped_slack_user_acts_as_her_member(
    stack: Endpoints, unique: str, tmp_path: Path, slack: SlackStandIn
) -> None:
    engine = slack_engine(stack, unique, tmp_path, slack, ROUTING)
    members = write_members_file(tmp_path / "members.json", [ANA])
    document = json.loads(members.read_text())
    document["members"][0]["slack_user"] = "U0ANA"
    members.write_text(json.dumps(document))
    engine.env["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"] = str(members)
    worker = engine.worker().start()
    try:
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id="r-map-a"), rating(id="r-map-b")]),
        )
        wait_until(lambda: len(slack.posts()) == 2)
        first, second = slack.posts()
        first_id = first.alert_id
        second_id = second.alert_id

        assert click(worker, first, "claim", user="U0ANA") == 200
        assert status_of(first).startswith("*Claimed* by Ana Souza")
        assert click(worker, second, "claim", user="U0BO") == 200
        assert status_of(second).startswith("*Claimed* by <@U0BO>")
        # Reassigned in Slack to Ana's Slack user: Ana's case.
        assert click(worker, second, "reassign", user="U0BO", selected_user="U0ANA") == 200

        ana = SignedInClient(worker.url, ANA)
        mine = ana.get_json("/console/cases.json?show=mine")
        assert sorted(row["alert_id"] for row in mine["rows"]) == sorted([first_id, second_id])
        records = [
            orjson.loads(record.value) for record in engine.consume(engine.kafka.cases_topic, 3)
        ]
        assert [
            (r["action"], r["user_id"], r["source"]) for r in records if r["alert_id"] == first_id
        ] == [("claim", "member:ana", "slack")]
        assert [
            (r["action"], r["user_id"], r.get("assignee"), r.get("assignee_name"))
            for r in records
            if r["alert_id"] == second_id
        ] == [
            ("claim", "U0BO", "U0BO", "u0bo"),  # the stand-in names users so
            ("reassign", "U0BO", "member:ana", "Ana Souza"),
        ]
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([{"name": "ana", "slack_user": "ana"}], "members.0.slack_user"),
        (
            [{"name": "ana", "slack_user": "U0ANA"}, {"name": "bo", "slack_user": "U0ANA"}],
            "slack_user U0ANA is both 'ana' and 'bo'",
        ),
    ],
)
def test_a_members_file_with_a_wrong_slack_user_is_refused_naming_it(
    tmp_path: Path, members: list[dict[str, str]], problem: str
) -> None:
    from alert_engine.signin.members import MembersError, load_members

    path = tmp_path / "members.json"
    path.write_text(json.dumps({"members": members}))
    with pytest.raises(MembersError, match=problem):
        load_members(path)


def test_members_are_found_by_their_slack_user(tmp_path: Path) -> None:
    from alert_engine.signin.members import Members

    path = tmp_path / "members.json"
    path.write_text(
        json.dumps({"members": [{"name": "ana", "slack_user": "U0ANA"}, {"name": "bo"}]})
    )
    members = Members(path)
    found = members.by_slack_user("U0ANA")
    assert found is not None and found.name == "ana"
    assert members.by_slack_user("U0BO") is None
    assert [member.name for member in members.all()] == ["ana", "bo"]

"""The demo's scripted recovery team on a real worker: with `--keep-running` it leaves a case for
the user to claim and resolve on the outbox page."""

import asyncio

import pytest

from alert_engine.demo import close_the_loop
from alert_engine.settings import RedisSettings
from tests.engine import encode_all
from tests.factories import rating
from tests.followup_factories import followup_engine
from tests.test_followup_schedule import read_emails
from tests.test_outbox_page import get, post

pytestmark = pytest.mark.integration


def test_kept_running_the_demo_leaves_the_last_case_for_the_user(stack, unique, tmp_path, capsys):
    engine = followup_engine(stack, unique, tmp_path)
    worker = engine.worker().start()
    try:
        other = {"id": "c-2", "name": "Maya Chen", "email": "maya@example.com"}
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id="r-demo-1"), rating(id="r-demo-2", customer=other)]),
        )
        engine.wait_for(lambda: len(engine.delivered()) == 2)
        redis = RedisSettings(url=stack.redis_url, key_prefix=f"test-{unique}")
        answered = asyncio.run(
            close_the_loop(worker.url, engine.outbox, engine.surveys, redis, leave_open=1)
        )
        assert answered == 1
        [closed, left] = engine.delivered()
        [email] = read_emails(engine.surveys)
        assert email["alert_id"] == closed["id"]
        assert f"Left open for you: case {left['id']}" in capsys.readouterr().out

        # The user's clicks on the page: the open case can still be claimed and resolved.
        page = get(worker.url + "/outbox")
        token = page.split('name="token" value="', 1)[1].split('"', 1)[0]
        form = {"token": token, "alert_id": left["id"], "user": "You"}
        assert post(worker.url + "/outbox/act", {**form, "action": "claim"}) == 303
        assert post(worker.url + "/outbox/act", {**form, "action": "resolved_followup"}) == 303
        engine.wait_for(lambda: len(read_emails(engine.surveys)) == 2)
        assert read_emails(engine.surveys)[1]["alert_id"] == left["id"]
    finally:
        worker.stop()

"""The survey pages behind the emailed link, on the session's real Redis."""

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from alert_engine.cases import CaseState
from alert_engine.events import Rating, Stream, decode_event
from alert_engine.followup.service import Answered, FollowupService
from alert_engine.followup.tokens import sign, verify
from tests.factories import make_alert
from tests.followup.test_schedule import NOW, Clock, read_emails, service
from tests.followup_factories import case, legacy_survey_token


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


async def sent_survey(followup: FollowupService, clock: Clock, tmp_path: Path, **event: Any) -> str:
    alert = make_alert("r-1", rating=1, **event)
    await followup.on_case(case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW))
    clock.now = NOW + timedelta(hours=1)
    assert await followup.send_due() == 1
    [email] = read_emails(tmp_path / "surveys.jsonl")
    link: str = email["link"]
    return urlsplit(link).path.removeprefix("/survey/")


async def test_an_answer_is_recorded_once_and_becomes_a_follow_up_rating(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    token = await sent_survey(followup, clock, tmp_path)
    form = await followup.survey_form(token)
    assert form.status == 200
    assert 'name="rating" value="5"' in form.html

    answered = await followup.answer(token, {"rating": "4", "nps": "9", "comment": "Sorted!"})
    assert isinstance(answered, Answered)
    assert answered.page.status == 200 and "Thank you" in answered.page.html
    # A valid `ratings` event, about the same customer, agent, team and channel.
    event = decode_event(Stream.RATINGS, followup_bytes(answered.rating), max_bytes=65536)
    assert isinstance(event, Rating) and event.customer is not None
    assert (event.rating, event.nps, event.comment) == (4, 9, "Sorted!")
    assert event.survey == "follow_up"
    assert event.alert_id == make_alert("r-1").id
    assert (event.customer.id, event.agent.id, event.team, event.channel) == (
        "c-1",
        "a-7",
        "orders",
        "chat",
    )
    assert event.id != "r-1"
    assert answered.case.state is CaseState.RERATED
    assert answered.case.rerating is not None
    # The comment shows with the rating, where the team reads the answer.
    assert answered.case.rerating.summary() == "Customer re-rated 4★ (was 1★): “Sorted!”"

    # The link is used up: the form and a second answer are refused.
    again = await followup.answer(token, {"rating": "1"})
    assert not isinstance(again, Answered)
    assert again.status == 410 and "already answered" in again.html
    assert (await followup.survey_form(token)).status == 410


def followup_bytes(record: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(record)


async def test_a_released_answer_can_be_sent_again(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    token = await sent_survey(followup, clock, tmp_path)
    answered = await followup.answer(token, {"rating": "5"})
    assert isinstance(answered, Answered)
    await followup.release(answered.survey_id)  # publishing it to Kafka failed
    assert isinstance(await followup.answer(token, {"rating": "5"}), Answered)


async def test_expired_and_forged_links_show_a_clear_page_and_record_nothing(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock, token_ttl_seconds=3600)
    token = await sent_survey(followup, clock, tmp_path)
    # The same link made to last a day longer, without the key to sign it.
    checked = verify(await followup.secret(), token, clock.now)
    forged = sign(b"not the service's secret", checked.survey_id, clock.now + timedelta(days=1))
    page = await followup.answer(forged, {"rating": "5"})
    assert not isinstance(page, Answered)
    assert page.status == 404 and "not valid" in page.html

    clock.now += timedelta(hours=1)
    page = await followup.answer(token, {"rating": "5"})
    assert not isinstance(page, Answered)
    assert page.status == 410 and "closed" in page.html
    # Nothing recorded: the link is not used up (an answer would have marked it).
    assert await followup.redis.keys(f"{followup.prefix}:survey:*:answered") == []


async def test_a_link_sent_in_the_old_format_still_takes_the_answer(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    # Sent by the previous release, before tokens were signed by itsdangerous.
    followup = service(redis, unique, tmp_path, clock, token_ttl_seconds=3600)
    token = await sent_survey(followup, clock, tmp_path)
    survey_id = verify(await followup.secret(), token, clock.now).survey_id
    old_link = legacy_survey_token(
        await followup.secret(), survey_id, clock.now + timedelta(minutes=30)
    )
    assert (await followup.survey_form(old_link)).status == 200
    answered = await followup.answer(old_link, {"rating": "5"})
    assert isinstance(answered, Answered) and answered.survey_id == survey_id
    # One answer per survey, whichever of its links it came through.
    refused = await followup.answer(token, {"rating": "5"})
    assert not isinstance(refused, Answered) and refused.status == 410

    clock.now += timedelta(minutes=30)
    closed = await followup.survey_form(old_link)
    assert closed.status == 410 and "closed" in closed.html


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "choose from 1 to 5 stars"),
        ({"rating": "6"}, "choose from 1 to 5 stars"),
        ({"rating": "five"}, "choose from 1 to 5 stars"),
        ({"rating": "3", "nps": "11"}, "from 0 to 10"),
        ({"rating": "3", "comment": "x" * 2001}, "under 2000 characters"),
    ],
)
async def test_an_invalid_answer_shows_the_form_again_with_the_problem(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock, form: dict[str, str], message: str
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    token = await sent_survey(followup, clock, tmp_path)
    page = await followup.answer(token, form)
    assert not isinstance(page, Answered)
    assert page.status == 400 and message in page.html
    # Nothing was used up: a valid answer is still taken.
    assert isinstance(await followup.answer(token, {"rating": "3"}), Answered)


async def test_customer_text_is_escaped_everywhere(
    redis: Redis, unique: str, tmp_path: Path, clock: Clock
) -> None:
    followup = service(redis, unique, tmp_path, clock)
    token = await sent_survey(
        followup,
        clock,
        tmp_path,
        customer={"id": "c-x", "name": "<script>alert(1)</script>", "email": "x@y.test"},
        team='orders"><img src=x>',
    )
    form = await followup.survey_form(token)
    assert "<script>alert(1)" not in form.html and "&lt;script&gt;" in form.html
    assert "<img src=x>" not in form.html
    html = read_emails(tmp_path / "surveys.jsonl")[0]["html"]
    assert "<script>" not in html
    answered = await followup.answer(token, {"rating": "2", "comment": "</p><b>bold</b>"})
    assert isinstance(answered, Answered)
    assert "<b>bold</b>" not in answered.page.html and "&lt;b&gt;bold" in answered.page.html

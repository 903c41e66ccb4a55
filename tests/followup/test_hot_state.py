"""The closed loop keeps only hot state in Redis: schedules, claims and survey links, each gone when
done with. The outcome is the history's (PostgreSQL); nothing per alert stays for a year, and the
survey carries its alert itself, so the answer's `rerated` record has the alert as delivered."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from redis.asyncio import Redis

from alert_engine.cases import CaseAction, CaseEvent, CaseState
from alert_engine.followup.schedule import ScheduledSurvey
from alert_engine.followup.service import Answered, FollowupService
from alert_engine.history.migrate import migrate
from alert_engine.history.queries import ReportQuery, report
from alert_engine.history.records import Rows, Source, TopicNames, read
from alert_engine.history.writer import write
from alert_engine.rules.spec import Severity
from alert_engine.storage import redis_keys
from tests.factories import make_alert
from tests.followup.test_schedule import NOW, Clock, read_emails, service
from tests.followup_factories import case

# Keys the loop keeps while a survey is scheduled, not one per alert: a sorted set of due times
# and a hash of the surveys, emptied (so gone) as the surveys are settled.
SCHEDULE_KEYS = ("followup:due", "followup:payloads")


async def answer_latest(
    followup: FollowupService, tmp_path: Path, stars: int, nps: int
) -> Answered:
    link = read_emails(tmp_path / "surveys.jsonl")[-1]["link"]
    token = urlsplit(link).path.removeprefix("/survey/")
    answered = await followup.answer(token, {"rating": str(stars), "nps": str(nps)})
    assert isinstance(answered, Answered)
    # Published to the cases topic, whose agent hands it back:
    await followup.on_case(answered.case)
    return answered


async def test_the_loop_leaves_only_expiring_hot_state_in_redis(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    followup = service(redis, unique, tmp_path, clock, holdout_share=0.0)
    held_out = service(redis, unique, tmp_path, clock, holdout_share=1.0)

    # Recovered: alerted, claimed, resolved, surveyed, answered 4 after 1.
    first = make_alert(
        "r-1",
        fired_at=NOW,
        rating=1,
        nps=2,
        team="orders",
        customer={"id": "c-1", "email": "1@x.test"},
        severity=Severity.CRITICAL,
        route="vip",
    )
    assert await followup.on_alert(first) is None
    await followup.on_case(case(first, CaseState.CLAIMED, at=NOW + timedelta(minutes=2)))
    await followup.on_case(case(first, CaseState.RESOLVED_FOLLOWUP, at=NOW + timedelta(minutes=9)))
    clock.now = NOW + timedelta(hours=2)
    assert await followup.send_due() == 1
    answered = await answer_latest(followup, tmp_path, stars=4, nps=9)
    # The answer's record carries the alert as it was delivered, not a sketch of it.
    assert answered.case.alert == first
    assert (answered.case.alert.severity, answered.case.alert.route) == (Severity.CRITICAL, "vip")

    # Held out of recovery, surveyed all the same, answered 2 after 1.
    second = make_alert(
        "r-2", fired_at=NOW, rating=1, team="billing", customer={"id": "c-2", "email": "2@x.test"}
    )
    holdout = await held_out.on_alert(second)
    assert holdout is not None and holdout.state is CaseState.HOLDOUT
    await held_out.on_case(holdout)
    assert await held_out.send_due() == 1
    assert (await answer_latest(held_out, tmp_path, stars=2, nps=5)).case.alert == second

    prefix = f"test-{unique}:"
    keys = sorted(
        (key.decode() if isinstance(key, bytes) else key).removeprefix(prefix)
        for key in await redis.keys(prefix + "*")
    )
    assert keys, "the loop wrote nothing: the test would prove nothing"
    assert not [key for key in keys if key.startswith("outcome")], keys
    # Everything left is a marker, a claim or a link that expires on its own.
    for key in keys:
        if key not in SCHEDULE_KEYS:
            assert await redis.ttl(prefix + key) > 0, key
    # The settled surveys left the schedule: nothing of theirs stays there.
    assert await followup.schedule.pending() == 0


async def test_a_survey_scheduled_by_the_release_before_still_takes_its_answer(
    redis: Redis, unique: str, tmp_path: Path
) -> None:
    """Scheduled before the survey carried its alert (and the alert was kept in a year-long
    hash, no longer read): the answer's record rebuilds the alert from the survey's event."""
    clock = Clock(NOW)
    followup = service(redis, unique, tmp_path, clock)
    alert = make_alert("r-old", fired_at=NOW, rating=2, team="returns")
    old = ScheduledSurvey(
        alert_id=alert.id,
        survey_id="sv-before-the-upgrade",
        due_at=NOW,
        resolved_at=NOW,
        rule=alert.rule,
        event=alert.event,
    )
    payload = old.model_dump_json(exclude={"alert"})
    assert '"alert"' not in payload  # as the release before wrote it
    prefix = f"test-{unique}"
    await redis.hset(redis_keys.followup_payloads(prefix), alert.id, payload)
    await redis.zadd(redis_keys.followup_due(prefix), {alert.id: NOW.timestamp()})

    clock.now = NOW + timedelta(minutes=1)
    assert await followup.send_due() == 1
    link = read_emails(tmp_path / "surveys.jsonl")[-1]["link"]
    token = urlsplit(link).path.removeprefix("/survey/")
    form = await followup.survey_form(token)
    assert form.status == 200 and "returns" in form.html
    answered = await followup.answer(token, {"rating": "4"})
    assert isinstance(answered, Answered)
    rebuilt = answered.case.alert
    assert (rebuilt.id, rebuilt.rule, rebuilt.event) == (alert.id, alert.rule, alert.event)
    assert answered.case.rerating is not None and answered.case.rerating.previous_rating == 2


async def test_an_undone_resolution_is_not_counted_resolved_in_the_history(
    database_url: str,
) -> None:
    """Once kept in the Redis outcome facts, now the history's: the case counts as claimed, not
    resolved, once its resolution is taken back."""
    alert = make_alert("r-undo", fired_at=NOW)
    claimed = case(alert, CaseState.CLAIMED, at=NOW + timedelta(minutes=1), previous=CaseState.OPEN)
    resolved = case(alert, CaseState.RESOLVED_FOLLOWUP, at=NOW + timedelta(minutes=5)).model_copy(
        update={"action": CaseAction.RESOLVED_FOLLOWUP}
    )
    undone = case(
        alert,
        CaseState.CLAIMED,
        at=NOW + timedelta(minutes=6),
        previous=CaseState.RESOLVED_FOLLOWUP,
    ).model_copy(update={"action": CaseAction.UNDO, "undone": CaseAction.RESOLVED_FOLLOWUP})
    query = ReportQuery(NOW - timedelta(days=1), NOW + timedelta(days=1))

    async def counted(*changes: CaseEvent) -> tuple[int, int]:
        topics = TopicNames("alerts", "cases", "followups")
        rows = Rows()
        read(topics, Source("alerts", 0, 0), alert.to_json(), rows)
        for offset, change in enumerate(changes):
            read(topics, Source("cases", 0, offset), change.to_json(), rows)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await migrate(conn)
            await conn.execute(
                "TRUNCATE alerts, case_transitions, holdout_assignments, followup_sends, "
                "followup_answers, case_facts"
            )
            await write(conn, rows)
            total = (await report(conn, query)).total
        return total.claimed, total.resolved

    assert await counted(claimed, resolved) == (1, 1)
    assert await counted(claimed, resolved, undone) == (1, 0)  # the claim stays counted

"""Outcome facts recorded by the live loop, folded into `alert-engine report` and the dashboard."""

import asyncio
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from click.testing import CliRunner
from redis.asyncio import Redis

from alert_engine.cases import CaseState
from alert_engine.cli.main import main
from alert_engine.followup.outcomes import load_cases
from alert_engine.followup.service import Answered, FollowupService
from alert_engine.reports import dashboard
from alert_engine.settings import RedisSettings
from devstack.stack import Endpoints
from tests.factories import make_alert
from tests.followup_factories import case
from tests.test_followup_schedule import NOW, Clock, read_emails, service


async def answer_latest(followup: FollowupService, tmp_path: Path, stars: int, nps: int) -> None:
    link = read_emails(tmp_path / "surveys.jsonl")[-1]["link"]
    token = urlsplit(link).path.removeprefix("/survey/")
    answered = await followup.answer(token, {"rating": str(stars), "nps": str(nps)})
    assert isinstance(answered, Answered)
    # Published to the cases topic, whose agent records it:
    await followup.on_case(answered.case)


async def test_the_loop_records_what_the_report_shows(
    redis: Redis, unique: str, tmp_path: Path, stack: Endpoints
) -> None:
    clock = Clock(NOW)
    followup = service(redis, unique, tmp_path, clock, holdout_share=0.0)
    held_out = service(redis, unique, tmp_path, clock, holdout_share=1.0)

    # orders: alerted, claimed after 2 minutes, resolved, surveyed, re-rated 4 after 1.
    first = make_alert(
        "r-1",
        fired_at=NOW,
        rating=1,
        nps=2,
        team="orders",
        customer={"id": "c-1", "email": "1@x.test"},
    )
    assert await followup.on_alert(first) is None
    await followup.on_case(case(first, CaseState.CLAIMED, at=NOW + timedelta(minutes=2)))
    await followup.on_case(case(first, CaseState.RESOLVED_FOLLOWUP, at=NOW + timedelta(minutes=9)))
    clock.now = NOW + timedelta(hours=2)
    assert await followup.send_due() == 1
    await answer_latest(followup, tmp_path, stars=4, nps=9)

    # billing: held out of recovery, surveyed all the same, re-rated 2 after 1.
    second = make_alert(
        "r-2",
        fired_at=NOW,
        rating=1,
        nps=3,
        team="billing",
        customer={"id": "c-2", "email": "2@x.test"},
    )
    holdout = await held_out.on_alert(second)
    assert holdout is not None and holdout.state is CaseState.HOLDOUT
    assert await held_out.send_due() == 1
    await answer_latest(held_out, tmp_path, stars=2, nps=5)

    cases = await load_cases(RedisSettings(url=stack.redis_url, key_prefix=f"test-{unique}"))
    assert sorted((c.team, c.holdout, c.followup_rating) for c in cases) == [
        ("billing", True, 2),
        ("orders", False, 4),
    ]

    # In a thread: the command runs its own event loop, as from a terminal.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["report", "--by", "team"],
        env={
            "ALERT_ENGINE_REDIS_URL": stack.redis_url,
            "ALERT_ENGINE_REDIS_KEY_PREFIX": f"test-{unique}",
        },
    )
    assert result.exit_code == 0, result.output
    header, _, billing, orders, _, overall = result.output.splitlines()
    assert header.split()[:3] == ["team", "alerts", "claimed"]
    assert orders.split() == [
        "orders",
        "1",
        "1",
        "2",
        "min",
        "1",
        "1",
        "1",
        "100%",
        "1.0→4.0",
        "4.00x",
        "-100→100",
        "-",
        "-",
    ]
    assert billing.split()[5:8] == ["1", "1", "100%"]
    assert billing.split()[-2:] == ["2.00x", "-"]
    assert overall.split()[-4:] == ["4.00x", "-100→100", "2.00x", "2.00x"]

    html = dashboard(cases, "team", company="Acme")
    assert html.count("<svg") == 2
    assert "Follow-ups sent" in html and "<td>orders</td>" in html

"""`make demo`: local Kafka, Redis and PostgreSQL, a real worker process, a scripted feed, alerts
as they fire, the loop closed, and the outcome history's figures (the report, the dashboard)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from alert_engine.alerts import Alert
from alert_engine.cases import FINAL_ACTIONS, CaseAction, Rerating
from alert_engine.channels.outbox import read_outbox
from alert_engine.channels.presentation import AlertView
from alert_engine.cli.kafka import ensure_topics
from alert_engine.history.presentation import table
from alert_engine.history.queries import Report, ReportQuery, ReportUnavailable, load_report
from alert_engine.settings import DatabaseSettings, KafkaSettings
from devstack.foreground import StopRequested, stop_on_signals
from devstack.stack import running_stack
from devstack.webclient import SignedInClient
from devstack.workerprocess import WorkerProcess

# (stars, customer, agent, team, channel, comment)
FEED: list[tuple[int, str, str, str, str, str]] = [
    (5, "Maya Chen", "Sam Ortiz", "billing", "phone", "Quick and friendly, thank you!"),
    (
        1,
        "Jordan Lee",
        "Priya Nair",
        "orders",
        "chat",
        "Waited 40 minutes and my order is still lost.",
    ),
    (4, "Alex Kim", "Sam Ortiz", "billing", "email", ""),
    (
        2,
        "Riley Park",
        "Tom Becker",
        "returns",
        "phone",
        "Was transferred three times, nobody owned it.",
    ),
    (5, "Noor Haddad", "Priya Nair", "orders", "chat", "Solved in two minutes."),
    (3, "Chris Diaz", "Tom Becker", "returns", "phone", "It was fine I guess."),
    (1, "Sasha Ivanova", "Lena Vogel", "orders", "phone", "Rude agent, hung up on me."),
    (5, "Omar Said", "Lena Vogel", "orders", "chat", "Great help with my refund."),
]


def run_demo(workdir: Path, *, pause: float = 1.0, keep_running: bool = False) -> int:
    """SIGTERM or SIGINT (Ctrl-C) stops the worker, then Kafka, Redis and PostgreSQL, and
    returns 0."""
    try:
        with stop_on_signals():
            return _run(workdir, pause, keep_running)
    except (StopRequested, KeyboardInterrupt):
        return 0


def _run(workdir: Path, pause: float, keep_running: bool) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    outbox = workdir / "outbox.jsonl"
    _say(
        "starting Kafka, Redis and PostgreSQL "
        "(first run resolves the broker's jars from Maven Central)..."
    )
    # PostgreSQL too: the outcome figures (report, dashboard) are the history's alone.
    with running_stack(workdir / "stack", with_postgres=True) as endpoints:
        _say(
            f"Kafka at {endpoints.kafka_bootstrap}, Redis at {endpoints.redis_url}, "
            f"PostgreSQL at {_where(endpoints.database_url)}"
        )
        env = {
            **endpoints.as_env(),
            "ALERT_ENGINE_OUTBOX_PATH": str(outbox),
            "ALERT_ENGINE_RULES_DIR": os.environ.get("ALERT_ENGINE_RULES_DIR", "rules"),
            "ALERT_ENGINE_APP_ID": "alert-engine-demo",
            # The follow-up survey seconds after a case is resolved, at any hour.
            "ALERT_ENGINE_FOLLOWUP_DELAY_SECONDS": "2",
            "ALERT_ENGINE_FOLLOWUP_QUIET_START": "00:00",
            "ALERT_ENGINE_FOLLOWUP_QUIET_END": "00:00",
            "ALERT_ENGINE_FOLLOWUP_OUTBOX_PATH": str(workdir / "surveys.jsonl"),
        }
        kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap)
        asyncio.run(ensure_topics(kafka))
        worker = WorkerProcess(env, workdir / "worker.log")
        _say(f"starting a worker (log: {worker.log_path}, stats: {worker.url}/stats)")
        try:
            worker.start()
            _say("worker ready; playing the demo feed\n")
            expected, latencies = asyncio.run(_play(kafka, outbox, pause))
            seen = len(read_outbox(outbox))
            _say(
                f"\n{len(FEED)} ratings, {seen} alert(s) delivered, {expected} expected; "
                f"slowest alert {max(latencies, default=0.0):.2f} s after its rating."
            )
            _say(f"Alerts as delivered: {outbox}")
            entries = read_outbox(outbox)
            if entries:
                # The first card as the team sees it (Slack and email show the same facts).
                view = AlertView.of(Alert.model_validate(entries[0]["alert"]))
                _say(f"\nThe card: {view.title}")
                for label, value in view.facts()[:8]:
                    _say(f"  {label}: {value}")
                _say("")
            _say(f"The team's queue of open cases, a page per case: {worker.url}/console")
            _say(
                f"Alerts as the recovery team sees them, with working Claim / Resolve buttons: "
                f"{worker.url}/outbox"
                + (
                    ""
                    if keep_running
                    else " (run `python -m devstack demo --keep-running` to click)"
                )
            )
            if keep_running and worker.credentials is not None:
                _say(
                    f"Sign in there as {worker.credentials.name!r} with the password "
                    f"{worker.credentials.password!r} (this run's members file: "
                    f"{worker.env['ALERT_ENGINE_SIGNIN_MEMBERS_FILE']})"
                )
            # Kept running, the last case is left open for the user to claim and resolve.
            leave_open = 1 if keep_running and seen else 0
            _say(
                "\nThe recovery team claims and resolves "
                + ("each case but the last" if leave_open else "each case")
                + " with follow-up on the outbox page; the customers answer:\n"
            )
            answered = asyncio.run(
                close_the_loop(
                    worker.client,
                    outbox,
                    workdir / "surveys.jsonl",
                    DatabaseSettings(url=endpoints.database_url),
                    leave_open=leave_open,
                )
            )
            _say(
                f"\nThe manager's dashboard (ranges, filters, trends, CSV), signed in: "
                f"{worker.url}/dashboard"
                + (
                    ""
                    if keep_running
                    else " (run `python -m devstack demo --keep-running` to open)"
                )
            )
            if keep_running:
                _say(
                    "\nKafka, Redis, PostgreSQL and the worker keep running; press Ctrl-C to stop."
                )
                while True:
                    time.sleep(3600)
            return 0 if seen == expected and answered == expected else 1
        finally:
            worker.stop()


async def _play(kafka: KafkaSettings, outbox: Path, pause: float) -> tuple[int, list[float]]:
    expected = 0
    latencies: list[float] = []
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for number, (stars, customer, agent, team, channel, comment) in enumerate(FEED, start=1):
            produced_at = datetime.now(UTC)
            event = _rating(number, stars, customer, agent, team, channel, comment, produced_at)
            await producer.send_and_wait(kafka.ratings_topic, orjson.dumps(event))
            quote = f' "{comment}"' if comment else ""
            _say(
                f"  rating {event['id']}  {'★' * stars}{'☆' * (5 - stars)}  {customer} about "
                f"{agent} ({team}, {channel}){quote}"
            )
            if stars <= 2:
                expected += 1
            alert = await _wait_for_alert(outbox, event["id"], within=pause if stars > 2 else 10.0)
            if alert is not None:
                delivered_at = datetime.fromisoformat(str(alert["delivered_at"]))
                latency = (delivered_at - produced_at).total_seconds()
                latencies.append(latency)
                body: Any = alert["alert"]
                _say(
                    f"  ⚠ ALERT {body['rule']} [{body['severity']}] for {event['id']}: "
                    f"delivered {latency:.2f} s after the rating"
                )
            await asyncio.sleep(pause)
    finally:
        await producer.stop()
    return expected, latencies


def _rating(
    number: int,
    stars: int,
    customer: str,
    agent: str,
    team: str,
    channel: str,
    comment: str,
    at: datetime,
) -> dict[str, Any]:
    return {
        "id": f"r-{1000 + number}",
        "rating": stars,
        "comment": comment or None,
        "customer": {
            "id": f"c-{zlib.crc32(customer.encode()) % 10_000:04d}",
            "name": customer,
            "email": f"{customer.split()[0].lower()}@example.com",
        },
        "agent": {"id": agent.lower().replace(" ", "."), "name": agent},
        "team": team,
        "channel": channel,
        "interaction_id": f"i-{5000 + number}",
        "time": at.isoformat(),
    }


async def _wait_for_alert(outbox: Path, event_id: str, within: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for entry in read_outbox(outbox):
            alert: Any = entry["alert"]
            if alert["key"] == event_id:
                return entry
        await asyncio.sleep(0.02)
    return None


def _say(text: str) -> None:
    print(text, flush=True)


# What the demo's customers answer to the follow-up survey, by the stars they gave at first.
FOLLOW_UP_STARS = {1: 4, 2: 5}


async def close_the_loop(
    client: SignedInClient,
    outbox: Path,
    surveys: Path,
    database: DatabaseSettings,
    *,
    leave_open: int = 0,
) -> int:
    """Claim and resolve each alert's case with the outbox page's buttons, signed in through
    `client` (all but the last `leave_open`, which are left for the user), answer each survey
    as its customer would, print the outcome from the history in `database`; returns how many
    follow-ups were answered."""
    worker_url = client.base_url
    since = datetime.now(UTC) - timedelta(days=1)
    delivered = [Alert.model_validate(entry["alert"]) for entry in read_outbox(outbox)]
    split = len(delivered) - leave_open
    alerts, left_open = delivered[:split], delivered[split:]
    for alert in alerts:
        for action in (CaseAction.CLAIM, CaseAction.RESOLVED_FOLLOWUP):
            status = await asyncio.to_thread(_click, client, alert.id, action)
            if status != 303:
                _say(f"  ✘ {action.value} on {alert.id} answered HTTP {status}")
        _say(
            f"  ✔ case {alert.id} ({alert.key}) claimed and resolved with follow-up "
            f"on {worker_url}/outbox"
        )

    answered = 0
    deadline = time.monotonic() + 30
    while answered < len(alerts) and time.monotonic() < deadline:
        emails = read_outbox(surveys)
        for email in emails[answered:]:
            alert = next(alert for alert in alerts if alert.id == email["alert_id"])
            before = int(alert.event["rating"])
            stars = FOLLOW_UP_STARS.get(before, 5)
            status = await asyncio.to_thread(_answer, str(email["link"]), stars)
            _say(
                f"  ✉ survey emailed to {email['to']}; answered {stars}★ (HTTP {status}): "
                f"{Rerating(rating=stars, previous_rating=before, rating_id='-').summary()}"
            )
            answered += 1
        await asyncio.sleep(0.2)

    # The worker projects the answers into the history as it reads them from the cases topic.
    # (A stack named by the environment may have no history database: nothing to wait for.)
    deadline = time.monotonic() + 20
    report = await _history(database, since)
    while (
        database.url is not None
        and (report is None or report.total.answered < answered)
        and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.2)
        report = await _history(database, since)
    # The worker shows each answer on its alert's card as it consumes the `rerated` records.
    shown: list[str] = []
    while len(shown) < answered and time.monotonic() < deadline:
        page = await asyncio.to_thread(client.get, "/outbox")
        shown = re.findall(r'<p class="rerated">([^<]+)</p>', page)
        await asyncio.sleep(0.2)
    for line in shown:
        _say(f"  outbox page: {line}")
    if database.url is None:
        _say(
            "\nNo outcome table: the figures need the history database, and this environment "
            "names none (set ALERT_ENGINE_DATABASE_URL with the Kafka and Redis ones)."
        )
    else:
        _say("\nOutcome by team, from the history (`alert-engine report --since 1d`):\n")
        _say(table(report) if report is not None else "  ✘ the history did not answer in 20 s")
    for alert in left_open:
        _say(
            f"\nLeft open for you: case {alert.id} ({alert.key}, {alert.rule}). Claim it and "
            f"resolve it with follow-up on {worker_url}/console/cases/{alert.id} (or the outbox "
            f"page, {worker_url}/outbox); the survey email lands in {surveys} a few seconds later."
        )
    return answered


async def _history(database: DatabaseSettings, since: datetime) -> Report | None:
    """The report of the alerts since `since`, or None while the history is not there yet (the
    worker migrates its schema as it starts)."""
    query = ReportQuery(since, datetime.now(UTC) + timedelta(minutes=1), "team")
    try:
        return await load_report(database, query)
    except ReportUnavailable:
        return None


def _where(url: str | None) -> str:
    """Host and port of a PostgreSQL URL: the demo prints no password."""
    return "-" if url is None else url.rpartition("@")[2].split("/")[0]


def _click(client: SignedInClient, alert_id: str, action: CaseAction) -> int:
    """A button on the outbox page, as a signed-in browser sends it: the page's form with its
    CSRF token. A resolution records a reason; a final action passes the page's confirm step."""
    form = {"alert_id": alert_id, "action": action.value}
    if action in FINAL_ACTIONS:
        form.update({"reason": "apology", "confirm": "yes"})
    return client.post_form("/outbox/act", form)


def _answer(link: str, stars: int) -> int:
    body = urllib.parse.urlencode({"rating": stars, "comment": "Thanks for calling back."})
    with urllib.request.urlopen(link, data=body.encode(), timeout=10) as response:
        status: int = response.status
        return status

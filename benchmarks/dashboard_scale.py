"""How fast the dashboard and `alert-engine report` answer on a large history: N alerts (default
1,000,000) over the two years before now, with their claims, resolutions, holdout assignments,
follow-up sends and answers, generated in SQL in a throwaway PostgreSQL; then each view's queries
run R times (default 5), p50 and p95 printed.

    .venv/bin/python benchmarks/dashboard_scale.py [--alerts N] [--repeat R]

A view is what the dashboard runs for one page (`alert_engine.dashboard.page.load`: the groups,
the trend, the SLA shares and the filters' values); `report` is the groups' query alone, what
`alert-engine report` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from alert_engine.dashboard.form import DashboardForm, parse
from alert_engine.dashboard.page import connect, load
from alert_engine.history import rollups
from alert_engine.history.facts import refresh_all
from alert_engine.history.migrate import migrate
from alert_engine.history.queries import report
from alert_engine.settings import DatabaseSettings
from devstack.postgres import PostgresServer, create_database

_SEED = """
SELECT setseed(0.16);
CREATE UNLOGGED TABLE seed AS
SELECT i,
       now() - random() * interval '730 days' AS fired_at,
       random() < 0.1 AS holdout,
       random() AS r_claim, random() AS r_state, random() AS r_send, random() AS r_answer,
       floor(random() * 20)::int AS team, floor(random() * 200)::int AS agent,
       floor(random() * 3)::int AS channel, floor(random() * 30)::int AS member,
       1 + floor(random() * 3)::int AS rating, floor(random() * 11)::int AS nps,
       1 + floor(random() * 5)::int AS answer, floor(random() * 11)::int AS answer_nps,
       random() * 7200 AS claim_s, random() * 86400 AS resolve_s
FROM generate_series(1, {alerts}) AS i;
ALTER TABLE seed ADD COLUMN claimed boolean, ADD COLUMN state text, ADD COLUMN sent boolean;
UPDATE seed SET
    claimed = NOT holdout AND r_claim < 0.85,
    state = CASE WHEN holdout THEN NULL
                 WHEN r_state < 0.5 THEN 'resolved_followup'
                 WHEN r_state < 0.7 THEN 'resolved_no_followup'
                 WHEN r_state < 0.8 THEN 'not_actionable' END;
UPDATE seed SET sent = (holdout OR state = 'resolved_followup') AND r_send < 0.9;

INSERT INTO alerts
SELECT 'al-' || i, 'rule-' || (i % 8), CASE WHEN i % 5 = 0 THEN 'critical' ELSE 'high' END,
       'route-' || (i % 4), 'team-' || team, 'agent-' || agent,
       (ARRAY['chat', 'phone', 'email'])[channel + 1], 'c-' || i, fired_at, fired_at,
       rating, nps,
       CASE WHEN i % 3 = 0
            THEN jsonb_build_object('sla', jsonb_build_object('claim_by',
                 to_jsonb(fired_at + interval '30 minutes')))
            ELSE '{}'::jsonb END,
       'alerts', 0, i
FROM seed;
INSERT INTO case_transitions (source_topic, source_partition, source_offset, alert_id, state,
                              previous_state, actor, at, record)
SELECT 'cases', 0, i * 4, 'al-' || i, 'claimed', 'open', 'member-' || member,
       fired_at + claim_s * interval '1 second', '{}'::jsonb
FROM seed WHERE claimed;
INSERT INTO case_transitions (source_topic, source_partition, source_offset, alert_id, state,
                              previous_state, actor, at, record)
SELECT 'cases', 0, i * 4 + 1, 'al-' || i, state,
       CASE WHEN claimed THEN 'claimed' ELSE 'open' END,
       CASE WHEN claimed THEN 'member-' || member ELSE 'outbox' END,
       fired_at + (claim_s + resolve_s) * interval '1 second', '{}'::jsonb
FROM seed WHERE state IS NOT NULL;
INSERT INTO holdout_assignments
SELECT 'al-' || i, fired_at, 'cases', 0, i * 4 + 2 FROM seed WHERE holdout;
INSERT INTO followup_sends
SELECT 'sv-' || i, 'al-' || i, 'sent', fired_at + interval '1 day', holdout, '{}'::jsonb,
       'followups', 0, i
FROM seed WHERE sent;
INSERT INTO followup_answers
SELECT 'fu-' || i, 'al-' || i, answer, rating, answer_nps, NULL,
       fired_at + interval '2 days', '{}'::jsonb, 'cases', 0, i * 4 + 3
FROM seed WHERE sent AND r_answer < 0.5;
DROP TABLE seed;
"""

VIEWS: tuple[tuple[str, dict[str, str]], ...] = (
    ("last 4 weeks by agent", {"range": "4w", "by": "agent"}),
    ("last 12 weeks by team", {"range": "12w", "by": "team"}),
    ("last 52 weeks by week", {"range": "52w", "by": "week"}),
    ("52 weeks, one team, by member", {"range": "52w", "by": "member", "team": "team-3"}),
    ("two years by month", {"range": "custom", "since": "", "until": "", "by": "month"}),
)


async def timed(repeat: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def seed(url: str, alerts: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        start = time.perf_counter()
        # One script, no parameters (a count is no injection): psycopg sends it as one query.
        await conn.execute(_SEED.replace("{alerts}", str(int(alerts))).encode())
        # The projection folds each alert's case and its day's roll-ups as it writes: here all
        # at once.
        async with conn.transaction():
            await conn.execute("SELECT set_config('jit', 'off', true)")
            await refresh_all(conn)
        async with conn.transaction():
            await rollups.rebuild(conn)
        await conn.execute("VACUUM ANALYZE")
        print(f"seeded {alerts:,} alerts in {time.perf_counter() - start:.0f} s", flush=True)


async def run(url: str, alerts: int, repeat: int) -> None:
    await seed(url, alerts)
    # The page's own connection (its settings: no JIT, the statement timeout).
    database = DatabaseSettings(url=SecretStr(url), statement_timeout=600)
    async with await connect(database) as conn:
        now = datetime.now(UTC)
        today = date.today()
        print(
            f"{'view':32} {'page p50':>9} {'page p95':>9} {'report p50':>11} {'report p95':>11}",
            flush=True,
        )
        for name, params in VIEWS:
            if params.get("range") == "custom":
                params = {
                    **params,
                    "since": f"{today - timedelta(days=731)}",
                    "until": f"{today}",
                }
            form: DashboardForm = parse(params, now)
            assert form.query is not None, form.problems
            query = form.query
            page = await timed(repeat, lambda f=form: load(conn, f))  # type: ignore[misc]
            alone = await timed(repeat, lambda q=query: report(conn, q))  # type: ignore[misc]
            print(
                f"{name:32} {statistics.median(page) * 1000:7.0f}ms {p95(page) * 1000:7.0f}ms"
                f" {statistics.median(alone) * 1000:9.0f}ms {p95(alone) * 1000:9.0f}ms",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as workdir:
        server = PostgresServer(Path(workdir))
        server.start()
        try:
            url = create_database(server.url, "history")
            asyncio.run(run(url, args.alerts, args.repeat))
        finally:
            server.stop()


if __name__ == "__main__":
    main()

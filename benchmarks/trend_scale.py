"""How long the dashboard trend's own queries take on a large history: the open backlog at each
period's end (`history.backlog`) and the closed cases' reason codes (`history.reasons`), beside
the whole page, for the views of `dashboard_scale.py` (same generated history, N alerts over two
years, default 1,000,000).

    nice .venv/bin/python benchmarks/trend_scale.py [--alerts N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from alert_engine.dashboard.form import parse
from alert_engine.dashboard.page import connect, load
from alert_engine.history.backlog import backlog
from alert_engine.history.reasons import closed_reasons
from alert_engine.settings import DatabaseSettings
from benchmarks.dashboard_scale import VIEWS, p95, seed, timed
from devstack.postgres import PostgresServer, create_database


def _ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:7.0f} {p95(times) * 1000:7.0f}"


async def run(url: str, alerts: int, repeat: int) -> None:
    await seed(url, alerts)
    database = DatabaseSettings(url=SecretStr(url), statement_timeout=600)
    async with await connect(database) as conn:
        now = datetime.now(UTC)
        today = date.today()
        print(f"load average at start: {os.getloadavg()}", flush=True)
        print(f"{'view (ms p50 p95)':32} {'backlog':>15} {'reasons':>15} {'page':>15}", flush=True)
        for name, params in VIEWS:
            if params.get("range") == "custom":
                params = {**params, "since": f"{today - timedelta(days=731)}", "until": f"{today}"}
            form = parse(params, now)
            assert form.query is not None, form.problems
            query, period = form.query, form.period
            ages = await timed(repeat, lambda q=query, p=period: backlog(conn, q, p))  # type: ignore[misc]
            codes = await timed(repeat, lambda q=query, p=period: closed_reasons(conn, q, p))  # type: ignore[misc]
            page = await timed(repeat, lambda f=form: load(conn, f))  # type: ignore[misc]
            print(f"{name:32} {_ms(ages):>15} {_ms(codes):>15} {_ms(page):>15}", flush=True)
        print(f"load average at end: {os.getloadavg()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-trend-") as workdir:
        server = PostgresServer(Path(workdir))
        server.start()
        try:
            url = create_database(server.url, "history")
            asyncio.run(run(url, args.alerts, args.repeat))
        finally:
            server.stop()


if __name__ == "__main__":
    main()

from functools import partial

import pytest
from redis.asyncio import Redis

from alert_engine.alerts import Alert, alert_id
from alert_engine.channels import DeliveryError, Destination, PermanentDeliveryError
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger, RetryPolicy
from tests import factories

make_alert = partial(factories.make_alert, route="team")


class Recorder:
    """A destination that records what it was sent, failing first with the errors given."""

    def __init__(self, name: str = "team", errors: list[Exception] | None = None) -> None:
        self.name = name
        self.errors = list(errors or [])
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(alert.id)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def deliverer(
    redis: Redis,
    unique: str,
    destination: Recorder,
    sleeps: list[float],
    attempts: int = 4,
    first_delay: float = 0.5,
    uniform: float = 0.5,
) -> Deliverer:
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return Deliverer(
        {destination.name: destination},
        DeliveryLedger(redis, f"test-{unique}"),
        retry=RetryPolicy(
            attempts=attempts,
            first_delay=first_delay,
            max_delay=4.0,
            jitter=0.2,
            uniform=lambda: uniform,
        ),
        sleep=fake_sleep,
    )


async def test_an_alert_is_delivered_once_even_when_consumed_twice(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    team = Recorder()
    first_worker = deliverer(redis, unique, team, sleeps)
    # A second worker (after a rebalance or restart) shares only Redis with the first.
    second_worker = deliverer(redis, unique, team, sleeps)
    alert = make_alert()
    assert await first_worker.deliver(alert) == []
    assert await second_worker.deliver(alert) == []
    assert team.sent == [alert.id]
    assert second_worker.stats.alerts_duplicate["team"] == 1


async def test_transient_failures_are_retried_with_backoff_honouring_retry_after(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    team = Recorder(errors=[OSError("reset"), DeliveryError("429", retry_after=1.0), OSError("x")])
    # The jitter at its top (+20%): 0.1 s doubling, but never less than the Retry-After.
    worker = deliverer(redis, unique, team, sleeps, attempts=4, first_delay=0.1, uniform=1.0)
    assert await worker.deliver(make_alert()) == []
    assert team.sent == [make_alert().id]
    assert sleeps == pytest.approx([0.12, 1.0, 0.48])


def test_retry_delays_are_spread_by_the_jitter_within_bounds() -> None:
    def policy(uniform: float) -> RetryPolicy:
        return RetryPolicy(first_delay=0.5, max_delay=30.0, jitter=0.2, uniform=lambda: uniform)

    assert [policy(0.0).delay(n) for n in (1, 2, 3)] == pytest.approx([0.4, 0.8, 1.6])
    assert [policy(1.0).delay(n) for n in (1, 2, 3)] == pytest.approx([0.6, 1.2, 2.4])
    assert policy(1.0).delay(10) == 30.0  # capped
    assert policy(0.0).delay(1, retry_after=5.0) == 5.0


async def test_a_delivery_that_keeps_failing_is_handed_back_not_dropped(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    team = Recorder(errors=[OSError("down")] * 3)
    alert = make_alert()
    [failure] = await deliverer(redis, unique, team, sleeps, attempts=3).deliver(alert)
    assert failure.destination == "team"
    assert "after 3 attempts: down" in failure.reason
    # Nothing was recorded as delivered: a replay of the dead letter delivers it.
    assert await deliverer(redis, unique, team, sleeps).deliver(alert) == []
    assert team.sent == [alert.id]


async def test_a_permanent_error_is_not_retried(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    team = Recorder(errors=[PermanentDeliveryError("channel_not_found")])
    [failure] = await deliverer(redis, unique, team, sleeps).deliver(make_alert())
    assert failure.reason == "permanent: channel_not_found"
    assert sleeps == []


async def test_an_alert_for_an_unknown_route_fails_visibly(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    [failure] = await deliverer(redis, unique, Recorder(), sleeps).deliver(make_alert(route="x"))
    assert failure.reason == "no destination named 'x'"


async def test_a_throttled_rule_delivers_one_alert_per_key_and_period_across_workers(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    from alert_engine.alerts import Throttle

    team = Recorder()
    first_worker = deliverer(redis, unique, team, sleeps)
    second_worker = deliverer(redis, unique, team, sleeps)
    hour = Throttle(key="c-1", seconds=3600)
    first = make_alert("r-1").model_copy(update={"throttle": hour})
    second = make_alert("r-2").model_copy(update={"throttle": hour})
    other_customer = make_alert("r-3").model_copy(
        update={"throttle": Throttle(key="c-2", seconds=3600)}
    )
    assert await first_worker.deliver(first) == []
    assert await second_worker.deliver(second) == []  # same rule and key, other worker
    assert await second_worker.deliver(first) == []  # the first alert redelivered: not throttled
    assert await first_worker.deliver(other_customer) == []
    assert team.sent == [first.id, other_customer.id]
    assert second_worker.stats.alerts_throttled["negative-rating"] == 1


async def test_the_throttle_ends_after_its_period(
    redis: Redis, unique: str, sleeps: list[float]
) -> None:
    import asyncio

    from alert_engine.alerts import Throttle

    team = Recorder()
    worker = deliverer(redis, unique, team, sleeps)
    brief = Throttle(key="c-1", seconds=0.2)
    await worker.deliver(make_alert("r-1").model_copy(update={"throttle": brief}))
    await worker.deliver(make_alert("r-2").model_copy(update={"throttle": brief}))
    await asyncio.sleep(0.3)
    await worker.deliver(make_alert("r-3").model_copy(update={"throttle": brief}))
    assert team.sent == [alert_id("negative-rating", "r-1"), alert_id("negative-rating", "r-3")]


class Down:
    """A destination that fails every send until `up_at` (event-loop time), noting each send."""

    def __init__(self, name: str, up_at: float = float("inf")) -> None:
        self.name = name
        self.up_at = up_at
        self.tries = 0
        self.sent: list[str] = []

    async def send(self, alert: Alert) -> None:
        import asyncio

        self.tries += 1
        await asyncio.sleep(0.01)  # a network call
        if asyncio.get_running_loop().time() < self.up_at:
            raise OSError("connection refused")
        self.sent.append(alert.id)


def real_time_deliverer(
    redis: Redis, unique: str, *destinations: Destination, give_up_after: float = 30.0
) -> Deliverer:
    return Deliverer(
        {d.name: d for d in destinations},
        DeliveryLedger(redis, f"test-{unique}"),
        retry=RetryPolicy(
            attempts=3,
            first_delay=0.05,
            max_delay=0.2,
            failures_to_open=3,
            give_up_after=give_up_after,
        ),
    )


async def test_a_dead_destination_neither_slows_another_nor_gets_a_send_per_alert_and_try(
    redis: Redis, unique: str
) -> None:
    import asyncio

    email, slack = Down("email"), Down("slack", up_at=0.0)
    worker = real_time_deliverer(redis, unique, email, slack, give_up_after=1.5)
    to_email = [
        asyncio.create_task(worker.deliver(make_alert(f"r-e{n}", route="email"))) for n in range(10)
    ]
    to_slack = [
        asyncio.create_task(worker.deliver(make_alert(f"r-s{n}", route="slack"))) for n in range(10)
    ]
    done, _ = await asyncio.wait(to_slack, timeout=1.0)
    assert len(done) == 10 and all(task.result() == [] for task in done)
    assert len(slack.sent) == 10 and not all(task.done() for task in to_email)

    failures = [failure for outcome in await asyncio.gather(*to_email) for failure in outcome]
    # Every e-mail alert is handed back for the dead-letter topic, none dropped ...
    assert [f.destination for f in failures] == ["email"] * 10
    assert all(
        "after 3 attempts" in f.reason or "not delivered within 1.5 s" in f.reason for f in failures
    ), failures
    # ... and the open circuit spared the dead account most of the 30 sends.
    assert email.tries < 20
    assert worker.stats.destination_held["email"] >= 1
    assert worker.stats.destination_held["slack"] == 0


async def test_when_a_destination_answers_again_what_waited_goes_out_oldest_first(
    redis: Redis, unique: str
) -> None:
    import asyncio
    from datetime import timedelta

    loop = asyncio.get_running_loop()
    slack = Down("slack", up_at=loop.time() + 0.8)
    worker = real_time_deliverer(redis, unique, slack)
    base = make_alert("r-0", route="slack").fired_at
    alerts = [
        make_alert(f"r-{n}", route="slack").model_copy(
            update={"fired_at": base + timedelta(seconds=n)}
        )
        for n in range(12)
    ]
    tasks = []
    for alert in alerts:  # they arrive during the outage, a little apart
        tasks.append(asyncio.create_task(worker.deliver(alert)))
        await asyncio.sleep(0.03)
    assert await asyncio.gather(*tasks) == [[]] * 12
    # The probe that found it answering is the alert with the fewest failed tries (so one that
    # fails on its own cannot be it every time); after it, the oldest first.
    probe, *rest = slack.sent
    assert rest == [alert.id for alert in alerts if alert.id != probe]
    # About a probe per cool-down while down, not a send per alert and backoff.
    assert slack.tries < 12 + 12

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from alert_engine.channels.email import EmailDestination
from alert_engine.channels.presentation import LinkTemplates
from alert_engine.channels.slack import SlackDestination, make_client
from alert_engine.delivery.deliverer import Deliverer, DeliveryLedger, RetryPolicy
from standins.slack import TOKEN, SlackStandIn
from tests.factories import make_alert


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()


def destination(slack: SlackStandIn, channel: str = "C0RECOVERY", **links: str) -> SlackDestination:
    return SlackDestination(
        "recovery", channel, make_client(TOKEN, slack.base_url), LinkTemplates(**links)
    )


def deliverer(redis: Redis, unique: str, dest: SlackDestination, attempts: int = 6) -> Deliverer:
    async def no_sleep(seconds: float) -> None:
        pass

    return Deliverer(
        {dest.name: dest},
        DeliveryLedger(redis, f"test-{unique}"),
        retry=RetryPolicy(attempts=attempts, first_delay=0.01, max_delay=0.05),
        sleep=no_sleep,
        routing=None,
    )


def texts(blocks: object) -> list[str]:
    """Every text Slack would render from the blocks, with its type."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
                found.append(f"{node['type']}:{node['text']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return found


async def test_an_alert_shows_everything_needed_to_act(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    dest = destination(
        slack,
        customer="https://crm.example.com/customers/{customer_id}",
        interaction="https://cc.example.com/interactions/{interaction_id}",
    )
    alert = make_alert(
        "r-1",
        datetime(2026, 12, 3, 14, 5, tzinfo=UTC),
        customer={
            "id": "c 42/x",
            "name": "Jordan Lee",
            "tier": "gold",
            "email": "jordan@example.com",
            "phone": "+44 20 7946 0958",
            "timezone": "America/New_York",
        },
    )
    assert await deliverer(redis, unique, dest).deliver(alert, only="recovery") == []
    [message] = slack.posts("C0RECOVERY")
    # The header says who rated whom how, not the rule's name.
    assert message.blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "Jordan Lee (gold) rated Priya Nair 1★",
            "emoji": False,
        },
    }
    rendered = "\n".join(texts(message.blocks))
    epoch = int(alert.event_time.timestamp())
    for expected in (
        # Fields: a bold label over the value.
        "mrkdwn:*Rating*\n★☆☆☆☆",
        "mrkdwn:*NPS*\n2/10",
        "mrkdwn:*Agent*\nPriya Nair",
        "mrkdwn:*Team*\norders",
        "mrkdwn:*Channel*\nchat",
        "mrkdwn:*Customer*\nJordan Lee (gold)",
        "mrkdwn:*Email*\njordan@example.com",
        "mrkdwn:*Phone*\n+44 20 7946 0958",
        "mrkdwn:*Customer's time*\n09:05 America/New_York (UTC-05:00)",
        # The rating's time, in each reader's own time zone.
        f"mrkdwn:*Rated*\n<!date^{epoch}^{{date_short_pretty}} {{time}}|2026-12-03 14:05 UTC>",
        "mrkdwn:*Rule*\nnegative-rating",
        "rating=1",
        "plain_text:“Nobody called me back.”",
        # Ids from events are quoted: they cannot change the link.
        "<https://crm.example.com/customers/c%2042%2Fx|Customer>",
        "<https://cc.example.com/interactions/i-1|Interaction>",
        # The case's status, with its age as each reader's Slack counts it.
        "mrkdwn:*Open* · opened <!date^",
    ):
        assert expected in rendered, rendered
    assert "^{ago}|" in rendered
    [actions] = [block for block in message.blocks if block["type"] == "actions"]
    # Before a claim: Claim and Not actionable (asking first), assign, a note.
    assert [(e["type"], e.get("action_id")) for e in actions["elements"]] == [
        ("button", "claim"),
        ("button", "not_actionable"),
        ("users_select", "reassign"),
        ("button", "note"),
    ]
    assert actions["elements"][1]["confirm"]["title"]["text"] == "Not actionable?"
    assert {e["value"] for e in actions["elements"] if e["type"] == "button"} == {alert.id}
    assert message.text == "Jordan Lee (gold) rated Priya Nair 1★ · Nobody called me back."
    assert message.metadata == {
        "event_type": "alert_engine_alert",
        "event_payload": {"alert_id": alert.id, "escalated": False},
    }


def opens_nothing(text: str, n: int) -> bool:
    """A formatting character at `n` cannot open formatting: a zero-width space or a letter
    before it."""
    return n > 0 and (text[n - 1] == "\u200b" or text[n - 1].isalnum())


@pytest.mark.parametrize(
    "comment",
    [
        "<!channel> call me NOW",
        "hey <@U123> look",
        "see <https://x|bank> for details",
        "*bold* _it_ ~strike~ `code`",
        "bell\x07 and\x1b[31m escape\u202e reversed",
    ],
)
async def test_hostile_comments_render_as_plain_text(
    slack: SlackStandIn, redis: Redis, unique: str, comment: str
) -> None:
    alert = make_alert(comment=comment, customer={"id": "c-1", "name": "<!here> *Eve*"})
    assert await deliverer(redis, unique, destination(slack)).deliver(alert, only="recovery") == []
    [message] = slack.posts()
    payload = json.dumps(message.blocks, ensure_ascii=False) + message.text
    # Nothing Slack would parse as a mention, link or special command is left.
    for raw in ("<!channel>", "<!here>", "<@U123>", "<https://x|bank>"):
        assert raw not in payload
    for control in ("\x07", "\x1b", "\u202e"):
        assert control not in payload
    # Customer text sits in plain_text objects, which Slack never formats, or inside the engine's
    # mrkdwn with every formatting character defused (a zero-width space before it).
    customer_texts = [
        t
        for t in texts(message.blocks)
        if "Eve" in t
        or "call me" in t
        or "look" in t
        or "details" in t
        or "bold" in t
        or "escape" in t
    ]
    assert customer_texts
    for text in customer_texts:
        if text.startswith("mrkdwn:"):
            value = text.split("\n", 1)[-1]
            assert all(opens_nothing(value, n) for n, c in enumerate(value) if c in "*_~`"), text
        else:
            assert text.startswith("plain_text:")
    assert any("Eve" in t and t.startswith("mrkdwn:*Customer*") for t in customer_texts)
    # The notification text is escaped as the blocks are: `*bold*` is not bold there either.
    assert "<" not in message.text.replace("&lt;", "")
    text = message.text
    assert all(opens_nothing(text, n) for n, c in enumerate(text) if c in "*_~`")
    if comment.startswith("*bold*"):
        assert any("*bold* _it_ ~strike~ `code`" in t for t in customer_texts)


async def test_rate_limits_and_server_errors_are_retried_until_slack_recovers(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    slack.fail_next(2, 429, retry_after=1)
    slack.fail_next(5, 500)
    dest = destination(slack)
    alerts = [make_alert(key=f"r-{n}") for n in range(3)]
    d = deliverer(redis, unique, dest, attempts=8)
    for alert in alerts:
        assert await d.deliver(alert, only="recovery") == []
    assert sorted(m.alert_id for m in slack.posts()) == sorted(a.id for a in alerts)
    # Every injected failure was met, and still each alert was posted exactly once.
    assert slack.failures == []
    assert len(slack.posts()) == 3


async def test_an_alert_posted_before_a_crash_is_found_not_posted_again(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    dest = destination(slack)
    alert = make_alert()
    ledger = DeliveryLedger(redis, f"test-{unique}")
    # A worker marked the attempt and posted, then died before recording the delivery.
    await ledger.mark_attempt(alert.id, dest.name)
    await dest.send(alert)
    assert await deliverer(redis, unique, dest).deliver(alert, only="recovery") == []
    assert len(slack.posts()) == 1
    assert "conversations.history" in slack.calls
    assert await ledger.is_delivered(alert.id, dest.name)


async def test_an_unknown_channel_fails_for_good_without_retrying(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    dest = destination(slack, channel="C0NOWHERE")
    [failure] = await deliverer(redis, unique, dest).deliver(make_alert(), only="recovery")
    assert failure.reason == "permanent: slack: channel_not_found"
    assert slack.calls == ["chat.postMessage"]


async def test_an_ops_template_adds_a_plain_text_line_and_cannot_reach_internals(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    from alert_engine.channels.templates import MessageTemplate

    line = MessageTemplate(
        "{{ alert.team }}: call {{ alert.customer }} back", name="recovery.template", html=False
    )
    dest = SlackDestination(
        "recovery", "C0RECOVERY", make_client(TOKEN, slack.base_url), template=line
    )
    hostile = make_alert(customer={"id": "c-1", "name": "<!channel> Eve"})
    assert await deliverer(redis, unique, dest).deliver(hostile, only="recovery") == []
    [message] = slack.posts()
    assert message.text == "orders: call &lt;!channel&gt; Eve back"
    assert message.blocks[1]["text"] == {
        "type": "plain_text",
        "text": "orders: call &lt;!channel&gt; Eve back",
        "emoji": False,
    }

    sneaky = MessageTemplate(
        "{{ alert.facts.__class__.__mro__ }}", name="recovery.template", html=False
    )
    dest.template = sneaky
    [failure] = await deliverer(redis, unique, dest).deliver(make_alert("r-2"), only="recovery")
    assert failure.reason.startswith("permanent: template of recovery failed")
    assert len(slack.posts()) == 1


async def test_a_revoked_token_fails_for_good(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    dest = SlackDestination("recovery", "C0RECOVERY", make_client("xoxb-revoked", slack.base_url))
    [failure] = await deliverer(redis, unique, dest).deliver(make_alert(), only="recovery")
    assert failure.reason == "permanent: slack: invalid_auth"
    assert slack.posts() == []


async def test_one_retry_layer_decides_how_often_an_alert_is_posted(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    # Slack fails every post: the delivery layer's attempts are all the posts there are
    # (slack_sdk's own handlers retried each attempt twice more: 3 x the attempts).
    slack.fail_next(100, 500)
    [failure] = await deliverer(redis, unique, destination(slack), attempts=4).deliver(
        make_alert(), only="recovery"
    )
    assert "after 4 attempts" in failure.reason
    assert slack.calls.count("chat.postMessage") == 4


@pytest.mark.parametrize("status, error", [(200, "missing_scope"), (405, "method_not_allowed")])
async def test_a_failing_look_up_never_keeps_an_alert_from_being_posted(
    slack: SlackStandIn, redis: Redis, unique: str, status: int, error: str
) -> None:
    # A token without `channels:history` (or a proxy refusing the method): the look-up for an
    # earlier post fails every time, and the alert is still posted, once.
    slack.failing_methods["conversations.history"] = (status, error)
    dest = destination(slack)
    alert = make_alert()
    await DeliveryLedger(redis, f"test-{unique}").mark_attempt(alert.id, dest.name)
    d = deliverer(redis, unique, dest)
    assert await d.deliver(alert, only="recovery") == []
    assert slack.calls == ["conversations.history", "chat.postMessage"]
    assert len(slack.posts()) == 1
    assert d.stats.lookups_failed["recovery"] == 1


async def test_after_a_rate_limit_the_alert_is_posted_again_without_a_look_up(
    slack: SlackStandIn, redis: Redis, unique: str
) -> None:
    # Slack refuses a rate-limited call unread: nothing to look for.
    slack.fail_next(1, 429, retry_after=1)
    assert (
        await deliverer(redis, unique, destination(slack)).deliver(make_alert(), only="recovery")
        == []
    )
    assert slack.calls == ["chat.postMessage", "chat.postMessage"]
    assert len(slack.posts()) == 1


def test_a_team_that_must_not_see_contact_details_gets_cards_and_emails_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alert_engine.settings import Settings
    from alert_engine.worker.build import build_destinations, configured_routing

    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "destinations:\n"
        "  recovery: {type: slack, channel: C0RECOVERY}\n"
        "  leads: {type: email, to: [leads@example.com]}\n"
        "route:\n  destinations: [recovery, leads]\n"
    )
    monkeypatch.setenv("ALERT_ENGINE_ROUTING_FILE", str(routing))
    monkeypatch.setenv("ALERT_ENGINE_SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("ALERT_ENGINE_SENDGRID_API_KEY", "SG.unused")
    alert = make_alert(
        customer={
            "id": "c-1",
            "name": "Jordan Lee",
            "phone": "+1 555 0100",
            "email": "jordan@example.com",
        }
    )
    for show, seen in (("true", True), ("false", False)):
        monkeypatch.setenv("ALERT_ENGINE_CASES_SHOW_CONTACT", show)
        settings = Settings()
        destinations = build_destinations(configured_routing(settings), settings)
        card_to, mail_to = destinations["recovery"], destinations["leads"]
        assert isinstance(card_to, SlackDestination) and isinstance(mail_to, EmailDestination)
        card = json.dumps([b.to_dict() for b in card_to.message(alert)["blocks"]])
        mail = json.dumps(mail_to.message(alert).get())
        for shown in (card, mail):
            assert ("jordan@example.com" in shown) is seen
            assert ("+1 555 0100" in shown) is seen


# Mostly Slack's special characters with letters and spaces around them; sometimes anything.
MARKUP_TEXT = st.text(st.sampled_from(list("*_~`<>&!@a1 \n")), max_size=30) | st.text()


@settings(max_examples=300)
@given(MARKUP_TEXT)
def test_data_in_mrkdwn_can_open_no_markup_and_loses_nothing(text: str) -> None:
    from alert_engine.channels.slack_text import ZERO_WIDTH_SPACE, mrkdwn_text

    shown = mrkdwn_text(text)
    assert "<" not in shown and ">" not in shown
    assert all(opens_nothing(shown, n) for n, c in enumerate(shown) if c in "*_~`")
    # What a reader sees is what was typed: the zero-width spaces and escapes are all added.
    restored = shown.replace(ZERO_WIDTH_SPACE, "") if ZERO_WIDTH_SPACE not in text else None
    if restored is not None:
        assert restored.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text

"""Text for Slack: what the engine writes is mrkdwn, what customers and team members typed is
data. `plain` puts data in a `plain_text` object (never parsed); `mrkdwn_text` makes data safe
inside the engine's mrkdwn (bold labels, mentions, `<!date>` times): `&`, `<`, `>` escaped as
Slack requires, and a formatting character (`*`, `_`, `~`, a backquote) that could open
formatting (one not right after a letter or digit) preceded by a zero-width space, so `*bold*`
shows as typed instead of bold (Slack has no escape for them). After a letter or digit they
cannot open formatting and are left alone, so `jordan_lee@example.com` and `America/New_York`
stay as they are to copy.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from slack_sdk.models.blocks import PlainTextObject

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_FORMATTING = re.compile(r"(?<![^\W_])([*_~`])")
ZERO_WIDTH_SPACE = "\u200b"


def slack_text(text: str) -> str:
    """Slack's three control characters escaped; the rest is shown as is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_text(text: str) -> str:
    """Data made safe inside mrkdwn: no mention, link, command or formatting of its own."""
    return _FORMATTING.sub(ZERO_WIDTH_SPACE + r"\1", slack_text(text))


def plain(text: str) -> PlainTextObject:
    return PlainTextObject(text=slack_text(text), emoji=False)


def person(user_id: str, name: str) -> str:
    """A Slack user as a mention (each reader sees the name their workspace shows), anyone else
    by the name they gave, escaped."""
    if SLACK_USER_ID.match(user_id or ""):
        return f"<@{user_id}>"
    return mrkdwn_text(name or user_id or "someone")


def slack_date(at: datetime, token: str = "{date_short_pretty} {time}") -> str:
    """A time each reader sees in their own time zone (`<!date^…>`), with the UTC time for
    clients that cannot show it."""
    epoch = int(at.timestamp())
    fallback = f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return f"<!date^{epoch}^{token}|{fallback}>"


def slack_ago(at: datetime) -> str:
    """`3 minutes ago`, as each reader's Slack counts it."""
    return slack_date(at, "{ago}")

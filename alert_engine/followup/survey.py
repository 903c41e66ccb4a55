"""The survey pages and emails: rendered from Jinja2 templates with autoescaping on, so nothing a
customer (or an agent's name) contains can become markup. No JavaScript: a plain form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from alert_engine.followup.tokens import TokenProblem
from alert_engine.problems import AlertEngineError

MAX_COMMENT = 2000

templates = Environment(
    loader=PackageLoader("alert_engine.followup", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=False),
    trim_blocks=True,
    lstrip_blocks=True,
)

REFUSALS: Mapping[str, tuple[str, str]] = {
    TokenProblem.FORGED.value: (
        "This link is not valid",
        "We could not recognise this survey link. Please use the link from your email as it is.",
    ),
    TokenProblem.EXPIRED.value: (
        "This survey has closed",
        "The link has expired, so we can no longer take an answer through it. Thank you anyway.",
    ),
    "used": (
        "You have already answered",
        "This survey link has already been used, and your answer was recorded. Thank you!",
    ),
    "unavailable": (
        "Please try again in a minute",
        "We could not record your answer just now. Nothing was saved; please send it again.",
    ),
}


@dataclass(frozen=True)
class Answer:
    rating: int
    nps: int | None
    comment: str | None


class InvalidAnswer(AlertEngineError):
    pass


def parse_answer(form: Mapping[str, str]) -> Answer:
    """The posted form as an answer, or `InvalidAnswer` with what to tell the customer."""
    rating_text = form.get("rating", "")
    if rating_text not in {"1", "2", "3", "4", "5"}:
        raise InvalidAnswer("Please choose from 1 to 5 stars.")
    nps_text = form.get("nps", "")
    if nps_text and nps_text not in {str(score) for score in range(11)}:
        raise InvalidAnswer("Please choose a number from 0 to 10, or leave it empty.")
    comment = form.get("comment", "").strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidAnswer(f"Please keep your comment under {MAX_COMMENT} characters.")
    return Answer(
        rating=int(rating_text), nps=int(nps_text) if nps_text else None, comment=comment or None
    )


def survey_page(
    *,
    company: str,
    customer_name: str | None,
    team: str,
    action: str,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> str:
    form = form or {}
    return templates.get_template("survey.html").render(
        company=company,
        name=customer_name,
        team=team,
        action=action,
        error=error,
        chosen_rating=_int_or_none(form.get("rating")),
        chosen_nps=_int_or_none(form.get("nps")),
        comment=form.get("comment", ""),
        max_comment=MAX_COMMENT,
    )


def thanks_page(*, company: str, answer: Answer) -> str:
    return templates.get_template("thanks.html").render(
        company=company, rating=answer.rating, comment=answer.comment
    )


def refused_page(*, company: str, reason: str) -> str:
    heading, message = REFUSALS[reason]
    return templates.get_template("refused.html").render(
        company=company, heading=heading, message=message
    )


def email_bodies(
    *, company: str, customer_name: str | None, team: str, link: str, expires: datetime
) -> tuple[str, str]:
    """(text, html) of the survey email."""
    context: dict[str, Any] = {
        "company": company,
        "name": customer_name,
        "team": team,
        "link": link,
        "expires": expires.strftime("%d %B %Y"),
    }
    text = templates.get_template("email.txt").render(**context)
    html = templates.get_template("email.html").render(**context)
    return text, html


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None

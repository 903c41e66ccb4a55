from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from alert_engine.channels import PermanentDeliveryError
from alert_engine.channels.email import EmailDestination
from alert_engine.channels.presentation import LinkTemplates
from alert_engine.channels.templates import EmailTemplates, MessageTemplate, TemplateProblem
from alert_engine.followup import survey as survey_pages
from alert_engine.followup.mailer import OutboxMailer, SendGridMailer, SurveyEmail, survey_mailer
from alert_engine.rules.spec import Severity
from devstack.stack import Endpoints
from standins.sendgrid_prism import PrismMock
from tests import factories
from tests.factories import rating

# The email tests see the alert as critical (the subject line shows it).
make_alert = partial(factories.make_alert, severity=Severity.CRITICAL)


@pytest.fixture(scope="module")
def sendgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismMock]:
    mock = PrismMock(tmp_path_factory.mktemp("prism")).start()
    yield mock
    mock.stop()


# sendgrid ships no types, so its client is Any to mypy.
class RecordingClient(SendGridAPIClient):  # type: ignore[misc]
    """The real client, keeping the status of every answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statuses: list[int] = []

    def send(self, message: Mail) -> Any:
        try:
            response = super().send(message)
        except HTTPError as exc:
            self.statuses.append(exc.status_code)
            raise
        self.statuses.append(response.status_code)
        return response


def destination(client: SendGridAPIClient, **kwargs: Any) -> EmailDestination:
    return EmailDestination(
        "leads",
        ["lead-one@example.com", "lead-two@example.com"],
        client,
        "alerts@example.com",
        links=LinkTemplates(customer="https://crm.example.com/c/{customer_id}"),
        **kwargs,
    )


async def test_every_email_is_accepted_by_sendgrids_contract(sendgrid: PrismMock) -> None:
    client = RecordingClient(api_key="SG.test-key", host=sendgrid.url)
    dest = destination(client)
    alerts = [
        make_alert("r-plain"),
        make_alert("r-hostile", comment='<script>x</script> <!channel> *bold* "quotes" \x07'),
        make_alert("r-no-comment", comment=None, nps=None),
        make_alert("r-unicode", comment="Très déçu 😡 " * 50, customer={"id": "c/9 x"}),
    ]
    for alert in alerts:
        await dest.send(alert)
    assert client.statuses == [202] * len(alerts)


def test_an_email_has_text_and_html_with_customer_text_escaped() -> None:
    dest = destination(SendGridAPIClient(api_key="SG.unused"))
    mail = dest.message(make_alert(comment="<b>loud</b> & <a href='x'>link</a>")).get()
    [personalization] = mail["personalizations"]
    assert [to["email"] for to in personalization["to"]] == [
        "lead-one@example.com",
        "lead-two@example.com",
    ]
    # Who rated whom how, as on the Slack card.
    assert mail["subject"] == "[critical] Jordan Lee rated Priya Nair 1★"
    contents = {part["type"]: part["value"] for part in mail["content"]}
    # The same facts as the card: how to reach the customer, when they rated.
    assert "Email: jordan@example.com" in contents["text/plain"]
    assert "Rated: " in contents["text/plain"] and " UTC" in contents["text/plain"]
    assert "<b>loud</b> & <a href='x'>link</a>" in contents["text/plain"]
    assert (
        "&lt;b&gt;loud&lt;/b&gt; &amp; &lt;a href=&#39;x&#39;&gt;link&lt;/a&gt;"
        in (contents["text/html"])
    )
    assert "<b>loud</b>" not in contents["text/html"]
    assert 'href="https://crm.example.com/c/c-1"' in contents["text/html"]
    assert personalization["custom_args"] == {"alert_id": make_alert().id}


async def test_the_mock_rejects_what_breaks_the_contract(sendgrid: PrismMock) -> None:
    # A control: the mock does check. An email without a recipient is refused with 400.
    client = RecordingClient(api_key="SG.test-key", host=sendgrid.url)
    broken = Mail(from_email="alerts@example.com", subject="x", plain_text_content="x")
    with pytest.raises(HTTPError):
        client.send(broken)
    unauthenticated = RecordingClient(api_key="SG.x", host=sendgrid.url)
    unauthenticated.client.request_headers.pop("Authorization")
    with pytest.raises(HTTPError):
        unauthenticated.send(destination(unauthenticated).message(make_alert()))
    assert client.statuses == [400] and unauthenticated.statuses == [401]


def test_a_template_cannot_reach_python_internals() -> None:
    sneaky = MessageTemplate(
        "{{ alert.facts.__class__.__mro__[1].__subclasses__() }}", name="t", html=False
    )
    dest = destination(
        SendGridAPIClient(api_key="SG.unused"), templates=EmailTemplates(text=sneaky)
    )
    with pytest.raises(PermanentDeliveryError, match="template of leads failed"):
        dest.message(make_alert())


def test_a_template_syntax_error_names_file_and_line() -> None:
    with pytest.raises(TemplateProblem) as raised:
        MessageTemplate("Hello\n{{ alert.title }\n", name="leads.txt.j2", html=False)
    assert str(raised.value).startswith("leads.txt.j2:2: template syntax error")


@pytest.mark.integration
def test_a_worker_emails_alerts_that_sendgrids_contract_accepts(
    sendgrid: PrismMock, stack: Endpoints, unique: str, tmp_path: Path
) -> None:

    from tests.engine import Engine, encode_all

    engine = Engine(stack, unique, tmp_path)
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "destinations:\n"
        "  leads: {type: email, to: [leads@example.com], subject: 'Call {{ alert.customer }}'}\n"
        "route:\n  destinations: [leads]\n"
    )
    engine.env.update(
        {
            "ALERT_ENGINE_ROUTING_FILE": str(routing),
            "ALERT_ENGINE_SENDGRID_API_KEY": "SG.test-key",
            "ALERT_ENGINE_SENDGRID_HOST": sendgrid.url,
        }
    )
    # The mock is shared by this module's tests: read only what this test adds to its log.
    log_start = len(sendgrid.log_path.read_text())
    worker = engine.worker().start()
    try:
        comments = ["<b>bad</b>", "Ça ne va pas 😡", "line\nbreak\x00"]
        engine.produce(
            engine.kafka.ratings_topic,
            encode_all([rating(id=f"r-mail-{n}", comment=c) for n, c in enumerate(comments)]),
        )

        def stats() -> dict[str, Any]:
            return worker.stats()

        engine.wait_for(lambda: stats()["alerts_delivered"].get("leads") == len(comments))
        assert stats()["alerts_failed"] == {}
        assert not engine.delivered()  # nothing fell back to the outbox
        log = sendgrid.log_path.read_text()[log_start:]
        assert log.count('Responding with "202"') >= len(comments)
        assert "Violation" not in log
    finally:
        worker.stop()


def survey_email(name: str | None, team: str, to: str = "jordan@example.com") -> SurveyEmail:
    link = "http://127.0.0.1:6066/survey/v1.abc-_~.sig"
    text, html = survey_pages.email_bodies(
        company="Acme Care",
        customer_name=name,
        team=team,
        link=link,
        expires=datetime.now(UTC) + timedelta(days=14),
    )
    return SurveyEmail(
        to=to,
        sender="feedback@example.com",
        subject="How did we do? A quick question from Acme Care",
        text=text,
        html=html,
        link=link,
        alert_id="al-0123abcd",
        survey_id="sv-1",
    )


async def test_every_survey_email_is_accepted_by_sendgrids_contract(sendgrid: PrismMock) -> None:
    client = RecordingClient(api_key="SG.test-key", host=sendgrid.url)
    mailer = SendGridMailer(client)
    emails = [
        survey_email("Jordan Lee", "orders"),
        survey_email(None, ""),
        survey_email('<script>x</script> "Bo" & Co', "r&d <returns>"),
        survey_email("Zoë Ñúñez 😊", "facturación", to="zoe+survey@example.co.uk"),
    ]
    for email in emails:
        await mailer.send(email)
    assert client.statuses == [202] * len(emails)


def test_a_survey_email_carries_text_and_html_with_the_link_and_its_ids() -> None:
    email = survey_email("<b>Jordan</b>", "orders")
    mail = SendGridMailer(SendGridAPIClient(api_key="SG.unused")).message(email).get()
    [personalization] = mail["personalizations"]
    assert personalization["to"] == [{"email": "jordan@example.com"}]
    assert personalization["custom_args"] == {"alert_id": "al-0123abcd", "survey_id": "sv-1"}
    assert mail["from"] == {"email": "feedback@example.com"}
    contents = {part["type"]: part["value"] for part in mail["content"]}
    assert email.link in contents["text/plain"]
    assert f'href="{email.link}"' in contents["text/html"]
    assert "<b>Jordan</b>" not in contents["text/html"]


def test_surveys_go_through_sendgrid_only_when_an_api_key_is_configured(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from alert_engine.settings import FollowupSettings, SendGridSettings, Settings

    followup = FollowupSettings(outbox_path=tmp_path / "surveys.jsonl")
    unconfigured = Settings(followup=followup, sendgrid=SendGridSettings(api_key=None))
    assert isinstance(survey_mailer(unconfigured), OutboxMailer)
    configured = Settings(followup=followup, sendgrid=SendGridSettings(api_key=SecretStr("SG.key")))
    assert isinstance(survey_mailer(configured), SendGridMailer)


async def test_a_survey_is_retried_while_the_account_is_refused_and_rejected_when_the_email_is(
    sendgrid: PrismMock,
) -> None:
    from alert_engine.channels import DeliveryError

    unauthenticated = RecordingClient(api_key="SG.x", host=sendgrid.url)
    unauthenticated.client.request_headers.pop("Authorization")
    with pytest.raises(DeliveryError):  # retried later, not given up
        await SendGridMailer(unauthenticated).send(survey_email("Jordan", "orders"))
    client = RecordingClient(api_key="SG.test-key", host=sendgrid.url)
    for address in ("a b@example.com", "not an address"):
        with pytest.raises(PermanentDeliveryError):
            await SendGridMailer(client).send(survey_email("Jordan", "orders", to=address))
    # The second never leaves: the library cannot make an address of it.
    assert unauthenticated.statuses == [401] and client.statuses == [400]

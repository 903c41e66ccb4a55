"""Message templates written by ops, rendered in Jinja2's sandbox.

A template sees one variable, `alert`: the facts of the alert as plain values (title, severity,
rule, stars, nps, comment, customer, agent, team, channel, customer_url, interaction_url, values,
facts, alert_id). The sandbox stops any reach into Python internals (`__class__`, `__globals__`,
...): such a template fails to render, and the delivery layer dead-letters the alert with the error
instead of sending. Templates are compiled when the routing loads, so a syntax error stops the
worker from starting, with file and line.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from alert_engine.channels.presentation import AlertView
from alert_engine.problems import AlertEngineError

TEXT = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
HTML = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


class TemplateProblem(AlertEngineError):
    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message


class MessageTemplate:
    def __init__(self, source: str, *, name: str, html: bool) -> None:
        self.name = name
        try:
            self.template = (HTML if html else TEXT).from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(
                name, exc.lineno, f"template syntax error: {exc.message}"
            ) from None

    @classmethod
    def from_file(cls, path: Path, *, html: bool) -> MessageTemplate:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateProblem(str(path), 1, f"cannot read template: {exc}") from None
        return cls(source, name=str(path), html=html)

    def render(self, view: AlertView) -> str:
        """Raises `TemplateError` (including the sandbox's `SecurityError`)."""
        return self.template.render(alert=context(view))


def context(view: AlertView) -> dict[str, Any]:
    return {**asdict(view), "facts": view.facts()}


__all__ = ["MessageTemplate", "TemplateError", "TemplateProblem", "context"]

DEFAULT_SUBJECT = "[{{ alert.severity }}] {{ alert.title }}"

DEFAULT_TEXT = """\
{{ alert.title }}
{% for label, value in alert.facts %}
{{ label }}: {{ value }}
{%- endfor %}
{% if alert.comment %}
"{{ alert.comment }}"
{% endif %}
{%- if alert.customer_url %}
Customer: {{ alert.customer_url }}
{%- endif %}
{%- if alert.interaction_url %}
Interaction: {{ alert.interaction_url }}
{%- endif %}

Alert {{ alert.alert_id }}
"""

DEFAULT_HTML = """\
<h2>{{ alert.title }}</h2>
<table>{% for label, value in alert.facts %}
<tr><th align="left">{{ label }}</th><td>{{ value }}</td></tr>{% endfor %}
</table>
{% if alert.comment %}<blockquote>{{ alert.comment }}</blockquote>{% endif %}
<p>{% if alert.customer_url %}<a href="{{ alert.customer_url }}">Customer</a> {% endif %}
{% if alert.interaction_url %}<a href="{{ alert.interaction_url }}">Interaction</a>{% endif %}</p>
<p style="color:#888">Alert {{ alert.alert_id }}</p>
"""


class EmailTemplates:
    """An email destination's subject, text and HTML templates (the defaults where not set)."""

    def __init__(
        self,
        subject: MessageTemplate | None = None,
        text: MessageTemplate | None = None,
        html: MessageTemplate | None = None,
    ) -> None:
        self.subject = subject or MessageTemplate(DEFAULT_SUBJECT, name="subject", html=False)
        self.text = text or MessageTemplate(DEFAULT_TEXT, name="text", html=False)
        self.html = html or MessageTemplate(DEFAULT_HTML, name="html", html=True)

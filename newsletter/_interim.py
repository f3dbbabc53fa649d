"""Minimal stand-ins for render.* and message.* (send branch only).

The sending engine codes against the contracts of the render branch. Until
those are merged, campaigns.py falls back to these small versions so the engine can be
built and tested end to end. Delete this module once newsletter/render.py and
newsletter/message.py are on main.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate
from typing import Any

from .articles import Article


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str
    language: str


def render_article(article: Article, config: Any, *, language: str) -> RenderedEmail:
    body_html = "".join(b.html for b in article.blocks)
    body_text = "\n\n".join(b.text for b in article.blocks)
    return RenderedEmail(
        subject=article.title,
        html=f"<html lang=\"{language}\"><body><h1>{html.escape(article.title)}</h1>{body_html}"
        "<p>Hallo {{name}}, <a href=\"{{unsubscribe_url}}\">uitschrijven</a></p></body></html>",
        text=f"{article.title}\n\nHallo {{{{name}}}}\n\n{body_text}\n\nUitschrijven: {{{{unsubscribe_url}}}}\n",
        language=language,
    )


def render_confirmation(config: Any, *, language: str) -> RenderedEmail:
    return RenderedEmail(
        subject="Bevestig je inschrijving" if language == "nl" else "Confirm your subscription",
        html="<html><body><p><a href=\"{{confirm_url}}\">Confirm</a></p></body></html>",
        text="Confirm: {{confirm_url}}\n",
        language=language,
    )


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str
    token: str
    language: str


def make_message_id(*, campaign_key: str, subscriber_id: int, domain: str) -> str:
    return f"<{campaign_key}.{subscriber_id}@{domain}>"


class MessageBuilder:
    def __init__(
        self,
        config: Any,
        rendered_by_language: dict[str, RenderedEmail],
        *,
        campaign_key: str,
        test: bool = False,
    ) -> None:
        self.config = config
        self.rendered = rendered_by_language
        self.campaign_key = campaign_key
        self.test = test
        self.domain = config.sender_address.rpartition("@")[2]

    def message_id(self, recipient: Recipient) -> str:
        return make_message_id(
            campaign_key=self.campaign_key, subscriber_id=recipient.subscriber_id, domain=self.domain
        )

    def build(self, recipient: Recipient) -> bytes:
        rendered = self.rendered.get(recipient.language) or next(iter(self.rendered.values()))
        base = self.config.public_url
        fields = {
            "{{name}}": html.escape(recipient.name),
            "{{unsubscribe_url}}": f"{base}/u/{recipient.token}",
            "{{confirm_url}}": f"{base}/c/{recipient.token}",
        }
        text, body = rendered.text, rendered.html
        for key, value in fields.items():
            text, body = text.replace(key, value), body.replace(key, value)
        msg = EmailMessage(policy=SMTP)
        msg["From"] = formataddr((self.config.sender_name, self.config.sender_address))
        msg["To"] = formataddr((recipient.name, recipient.email))
        msg["Subject"] = ("[TEST] " if self.test else "") + rendered.subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = self.message_id(recipient)
        msg["List-Unsubscribe"] = f"<{base}/u/{recipient.token}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(text, cte="quoted-printable")
        msg.add_alternative(body, subtype="html", cte="quoted-printable")
        return msg.as_bytes()

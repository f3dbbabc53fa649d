"""Preview: the exact message one subscriber would get, written as .eml, .html and .txt files.

The preview goes through the same render and MessageBuilder path as a real send, so what
the editor opens is what subscribers receive (DKIM signature included when configured).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from ..audience import subscribers
from ..config import Config
from ..errors import NewsletterError
from ..files import private_dir, write_private
from .article import Article
from .headers import ascii_address
from .message import MessageBuilder, Recipient
from .render import render_article

PREVIEW_TOKEN = "preview"  # not a subscriber's token: the web server will find no one
GMAIL_CLIP_BYTES = 102 * 1024  # Gmail shows "[Message clipped]" for an HTML part above this


@dataclass(frozen=True)
class PreviewMessage:
    """The message one recipient would get: the wire bytes, and its text and HTML parts."""

    data: bytes
    text: str
    html: str
    recipient: Recipient


@dataclass(frozen=True)
class PreviewFiles:
    """What preview wrote, and for whom."""

    eml: Path
    html: Path
    text: Path
    recipient: Recipient
    html_bytes: int  # size of the HTML part; Gmail clips above about 102 KB
    subscriber: bool  # the address belongs to a subscriber (their name, token and language)


def preview_recipient(db: Database | None, config: Config, email: str | None) -> tuple[Recipient, bool]:
    """The subscriber with this address, or a stand-in; the flag says which it is.

    `db` is a sqlite_utils Database (or None to skip the look-up).
    """
    address = ascii_address(subscribers.normalize_email(email or config.sender_address))
    if db is not None and "subscribers" in db.table_names():
        row = subscribers.find(db, email or config.sender_address)
        if row is not None:
            return Recipient(subscriber_id=row["id"], email=row["email"], name=row["name"],
                             token=row["token"], language=row["language"]), True
    return (
        Recipient(subscriber_id=0, email=address, name="", token=PREVIEW_TOKEN, language=config.publication_language),
        False,
    )


def build_preview(article: Article, config: Config, *, recipient: Recipient) -> PreviewMessage:
    """Render the article and build the message for `recipient`, as a send would."""
    rendered = render_article(article, config, language=recipient.language)
    builder = MessageBuilder(config, {rendered.language: rendered}, campaign_key=f"preview:{article.slug}")
    data = builder.build(recipient)
    text, html = builder.personalised(recipient)
    return PreviewMessage(data=data, text=text, html=html, recipient=recipient)


def write_preview(
    article: Article,
    config: Config,
    *,
    recipient: Recipient,
    out_dir: Path,
    subscriber: bool = False,
) -> PreviewFiles:
    """Render the article for `recipient` and write <slug>.eml, <slug>.html and <slug>.txt."""
    message = build_preview(article, config, recipient=recipient)
    data, text, html = message.data, message.text, message.html
    stem = article.slug or "article"
    try:
        private_dir(out_dir)  # 0700 and 0600: a preview for a subscriber holds their token
        eml = out_dir / f"{stem}.eml"
        write_private(eml, data)
        html_path = out_dir / f"{stem}.html"
        write_private(html_path, html.encode("utf-8"))
        text_path = out_dir / f"{stem}.txt"
        write_private(text_path, text.encode("utf-8"))
    except OSError as exc:
        raise NewsletterError(f"cannot write the preview to {out_dir}: {exc.strerror}") from exc
    return PreviewFiles(
        eml=eml,
        html=html_path,
        text=text_path,
        recipient=recipient,
        html_bytes=len(html.encode("utf-8")),
        subscriber=subscriber,
    )

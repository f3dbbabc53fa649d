"""One-off messages outside any campaign: a test copy of an article and the double opt-in email.

They take the same SMTP path as a campaign (relays, TLS, reply classification), one
connection per message.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlite_utils import Database

from ..audience.events import log_event
from ..config import Config
from ..content.headers import ascii_address
from ..content.message import MessageBuilder, Recipient
from ..content.render import render_article, render_confirmation
from ..content.store import load_article
from ..db import transaction
from ..errors import SendError
from .campaigns import envelope_sender
from .capture import relays_or_capture
from .outcomes import DEFERRED, SENT, Outcome, classify_exception, classify_reply
from .pool import PoolOptions
from .relays import RelayPicker, RelayUnavailable, close_politely, connect


async def send_one(
    config: Config, *, envelope: str, recipient: str, data: bytes, options: PoolOptions | None = None
) -> tuple[Outcome, Path | None]:
    """Send one message outside any campaign (test sends, confirmations): same SMTP path."""
    options = options or PoolOptions.from_config(config)
    async with relays_or_capture(options.relays, config.outbox) as (relays, captured):
        relay = RelayPicker(relays).pick()
        try:
            client = await connect(
                relay, context=options.tls, password=options.password, timeout=options.timeout,
            )
        except RelayUnavailable as exc:
            return Outcome(DEFERRED, None, None, str(exc)), captured
        try:
            # RCPT TO in its xn-- form, as in a campaign (the message was built already, so
            # the address is known to be convertible).
            _, reply = await client.sendmail(envelope, [ascii_address(recipient)], data)
            outcome = classify_reply(250, reply)
        except Exception as exc:
            outcome = classify_exception(exc)
        await close_politely(client)
    return outcome, captured


async def send_test(
    config: Config, db: Database, article_ref: str | Path, *, to: str, options: PoolOptions | None = None
) -> tuple[Outcome, Path | None]:
    """One copy of the article to `to` only, marked as a test; no campaign is touched."""
    article = load_article(db, article_ref)
    language = config.publication_language
    rendered = {language: render_article(article, config, language=language)}
    builder = MessageBuilder(config, rendered, campaign_key=f"test{int(time.time())}", test=True)
    recipient = Recipient(subscriber_id=0, email=to, name="", token="test", language=language)
    return await send_one(
        config, envelope=envelope_sender(config, "test"), recipient=to,
        data=builder.build(recipient), options=options,
    )


async def send_confirmation(
    config: Config, db: Database, subscriber_id: int, *, options: PoolOptions | None = None
) -> tuple[Outcome, Path | None]:
    """Send the double opt-in email (with the confirm link) to a pending subscriber.

    Logs a `confirmation_sent` (or `confirmation_failed`) event. Raises SendError when the
    relay did not accept it, saying why; the subscriber simply stays pending. Returns the
    outcome and, with the built-in capture server, the folder the message went to.
    """
    row = db.execute(
        "SELECT email, name, token, language, status FROM subscribers WHERE id = ?", [subscriber_id]
    ).fetchone()
    if row is None:
        raise SendError(f"there is no subscriber {subscriber_id}")
    email, name, token, language, status = row
    if status != "pending":
        raise SendError(f"{email} is {status}, not pending: no confirmation email is needed")
    rendered = {language: render_confirmation(config, language=language)}
    builder = MessageBuilder(config, rendered, campaign_key=f"confirm{int(time.time() * 1000)}")
    recipient = Recipient(subscriber_id=subscriber_id, email=email, name=name, token=token, language=language)
    outcome, captured = await send_one(
        config, envelope=envelope_sender(config, token), recipient=email,
        data=builder.build(recipient), options=options,
    )
    with transaction(db):
        log_event(
            db, kind="confirmation_sent" if outcome.status == SENT else "confirmation_failed",
            source="send", subscriber_id=subscriber_id,
            # The code only: a reply text may quote the address, and events outlive erasure.
            detail={"code": outcome.code},
        )
    if outcome.status != SENT:
        code = f"{outcome.code} " if outcome.code else ""
        raise SendError(
            f"the confirmation email to {email} was not accepted ({code}{outcome.text}). "
            "The subscriber stays pending; try again later with "
            f"`newsletter subscribers resend-confirmation {email}`."
        )
    return outcome, captured

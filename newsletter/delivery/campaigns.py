"""Campaigns: one send of one article, with its delivery rows written before any connection.

Creating a campaign renders the article once per language, stores those rendered emails in
the campaign row (so a resumed run rebuilds the very same bytes) and writes one `queued`
delivery row per active subscriber whose cadence is `each`, in chunks of INSERT ... SELECT
so the subscriber list never passes through Python. A crash half-way through that leaves
the campaign in `creating`; whoever resumes it finishes the rows first.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from ..config import LANGUAGES, Config
from ..content.headers import ascii_domain
from ..content.message import MessageBuilder, Recipient
from ..content.render import render_article
from ..content.rendered import RenderedEmail
from ..content.store import load_article, mark_sent
from ..db import now
from ..errors import HeaderValueError, MessageTooLargeError, SendError
from . import codes
from .ledger import mark_ready, new_campaign, queue_deliveries, release_lease
from .records import UNFINISHED, Campaign, get_campaign, latest_for

CHUNK = 10_000


class AlreadySentError(SendError):
    """The article was sent before; sending it again needs --again."""


class NoAudienceError(SendError):
    """Nobody would get the article: no active subscriber, neither `each` nor a digest."""


class CampaignBrokenError(SendError):
    """The article's unfinished campaign cannot be built; it must be cancelled first."""


@dataclass(frozen=True)
class DryRun:
    """What `send --dry-run` reports: nothing is written, nothing is sent."""

    slug: str
    subject: str
    count: int
    sample: list[str]
    previous: int | None  # id of an earlier campaign of this article, if any


def make_owner() -> str:
    """A lease owner name: host and pid (so a dead holder is recognised) plus a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _audience_sql() -> str:
    # Only confirmed (active) subscribers who want every article get an article campaign.
    return "FROM subscribers WHERE status = 'active' AND cadence = 'each'"


def dry_run(config: Config, db: Database, article_ref: str | Path, *, sample: int = 5) -> DryRun:
    """How many would get the article, the first few of them, and the subject; writes nothing."""
    article = load_article(db, article_ref, store=False)
    rendered = render_article(article, config, language=config.publication_language)
    count = db.execute(f"SELECT count(*) {_audience_sql()}").fetchone()[0]
    first = [r[0] for r in db.execute(f"SELECT email {_audience_sql()} ORDER BY id LIMIT ?", [sample])]
    previous = latest_for(db, article.slug)
    return DryRun(
        slug=article.slug,
        subject=rendered.subject,
        count=count,
        sample=first,
        previous=previous["id"] if previous else None,
    )


def create_campaign(
    config: Config,
    db: Database,
    article_ref: str | Path,
    *,
    owner: str,
    again: bool = False,
) -> Campaign:
    """The campaign to send for an article: a new one, or the unfinished one to resume.

    Raises AlreadySentError when the article was sent before and `again` is false. `owner`
    holds the campaign's lease while its rows are written, so nobody sends it half-made.
    """
    article = load_article(db, article_ref)
    previous = latest_for(db, article.slug)
    if previous and previous["status"] == "broken":
        raise CampaignBrokenError(
            f"campaign {previous['id']} of {article.slug!r} cannot be built (its last run said "
            "why), so it is not resumed. Fix the article (or the setting), run `newsletter "
            f"cancel {previous['id']}`, then send it again: whoever already got it is skipped."
        )
    if previous and previous["status"] in UNFINISHED:
        # An interrupted campaign of this article: `send` finishes it rather than start over.
        return get_campaign(db, previous["id"])
    if previous and previous["status"] == "cancelled":
        again = True  # the cancelled send is finished by a new campaign (populate skips its recipients)
    if previous and not again and previous["status"] == "waiting":
        raise AlreadySentError(
            f"{article.slug!r} was already sent as campaign {previous['id']}, which is waiting "
            f"to retry its deferred deliveries: `newsletter retry {previous['id']}` sends those "
            "that are due. Pass --again to send the article once more as a new campaign."
        )
    if previous and not again:
        raise AlreadySentError(
            f"{article.slug!r} was already sent as campaign {previous['id']} "
            f"on {previous['created_at'][:16].replace('T', ' ')} UTC. "
            f"`newsletter status {previous['id']}` shows how it went; "
            "pass --again to send it once more as a new campaign."
        )
    _check_audience(db, article.slug)
    # Render before writing anything: a bad article never leaves a half-made campaign.
    rendered = {lang: render_article(article, config, language=lang) for lang in LANGUAGES}
    check_message_size(config, rendered, slug=article.slug)
    subject = rendered[config.publication_language].subject
    stamp = now()
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        # Checked again under the write lock: two `send`s started together create one.
        latest = latest_for(db, article.slug)
        if latest is not None and (latest["status"] in UNFINISHED or (
            previous is None or latest["id"] != previous["id"]
        )):
            db.conn.rollback()
            return get_campaign(db, latest["id"])
        campaign_id = new_campaign(
            db, kind="article", article_slug=article.slug, subject=subject, rendered=rendered,
            status="creating", campaign_key=secrets.token_hex(8), at=stamp,
            lease_owner=owner, lease_ttl=60,
        )
        mark_sent(db, article.slug, at=stamp)
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise
    populate(db, campaign_id)
    release_lease(db, campaign_id, owner=owner)  # created: from here on, whoever runs it takes the lease
    return get_campaign(db, campaign_id)


def _check_audience(db: Database, slug: str) -> None:
    """Refuse a campaign nobody would get, so the article stays unsent for later.

    With digest subscribers only, the (empty) campaign is still made: it is what releases
    the article into their digests.
    """
    each, digests = db.execute(
        "SELECT count(*) FILTER (WHERE cadence = 'each'), count(*) FILTER (WHERE cadence != 'each')"
        " FROM subscribers WHERE status = 'active'"
    ).fetchone()
    if each == 0 and digests == 0:
        pending = db.execute("SELECT count(*) FROM subscribers WHERE status = 'pending'").fetchone()[0]
        waiting = f" ({pending} pending confirmation)" if pending else ""
        raise NoAudienceError(
            f"nobody would get {slug!r}: there is no active subscriber{waiting}, neither one who "
            "gets every article nor one who gets a digest. Nothing was sent and the article is "
            "not marked as sent: send it again once people have subscribed "
            "(`newsletter subscribers count` shows who is active)."
        )


def check_message_size(
    config: Config, rendered: dict[str, RenderedEmail], *, slug: str, what: str = "",
    advice: str = "shorten the article",
) -> None:
    """Build one message per language now; refuse the campaign if one is over the limit.

    A very large email would be refused by receivers anyway, and held in memory once per
    connection and in the build buffer; building one also shows a message that cannot be
    built at all (MessageBuilder's errors) before a single row is queued. `what` names the
    email in the error (the article's slug by default), `advice` says how to make it smaller.
    """
    limit = config.sending_max_message_mb * 2**20
    builder = MessageBuilder(config, rendered, campaign_key="size-check")
    for language in rendered:
        probe = Recipient(subscriber_id=0, email="size-check@example.org", name="", token="x" * 22, language=language)
        size = len(builder.build(probe))
        if size > limit:
            raise MessageTooLargeError(
                f"{what or f'the email of {slug!r}'} would be {size / 2**20:.1f} MB, more than "
                f"sending.max_message_mb ({config.sending_max_message_mb:g} MB): {advice}, "
                "or raise sending.max_message_mb if your relay and readers accept it. "
                "Nothing was queued."
            )


def populate(db: Database, campaign_id: int, *, chunk: int = CHUNK) -> int:
    """Write the missing delivery rows of a `creating` campaign; return the total.

    Chunked, each chunk its own short transaction, resumable after a crash: it continues
    after the highest subscriber id already queued.
    """
    while True:
        status = db.execute("SELECT status FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
        if status is None or status[0] != "creating":
            break
        with db.conn:
            # The rows are written in subscriber order and all still queued (in
            # deliveries_retry): the newest row has the highest subscriber id so far.
            last = db.execute(
                "SELECT coalesce(max(subscriber_id), 0) FROM deliveries WHERE id = ("
                " SELECT max(id) FROM deliveries INDEXED BY deliveries_retry"
                " WHERE campaign_id = ? AND next_attempt_at IS NOT NULL)",
                [campaign_id],
            ).fetchone()[0]
            # Whoever got the article from a cancelled campaign of it is not sent it again.
            queued = queue_deliveries(
                db, campaign_id, params=[last, campaign_id, chunk],
                subscribers_sql=(
                    f"SELECT id {_audience_sql()} AND id > ? AND id NOT IN ("
                    " SELECT d.subscriber_id FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id"
                    f" WHERE c.status = 'cancelled' AND c.kind = 'article' AND d.status = {codes.SENT}"
                    " AND c.article_slug = (SELECT article_slug FROM campaigns WHERE id = ?)"
                    ") ORDER BY id LIMIT ?"
                ),
            )
            if queued < chunk:
                mark_ready(db, campaign_id)
    return db.execute("SELECT total FROM campaigns WHERE id = ?", [campaign_id]).fetchone()[0]


def builder_for(config: Config, campaign: Campaign, *, test: bool = False) -> MessageBuilder:
    """The per-recipient byte builder over the campaign's stored rendered emails."""
    return MessageBuilder(config, campaign.rendered, campaign_key=campaign.campaign_key, test=test)


def envelope_sender(config: Config, token: str) -> str:
    """The envelope sender (bounce address), with {token} filled in for VERP."""
    template = config.sender_envelope or config.sender_address
    local, at, domain = template.replace("{token}", token).rpartition("@")
    try:
        return f"{local}{at}{ascii_domain(domain)}" if at else local + domain
    except HeaderValueError:
        return f"{local}{at}{domain}"  # the relay says what is wrong with it


def verp_token(delivery_id: int, campaign_key: str) -> str:
    """The VERP token of one delivery: its id and a check derived from the campaign's key.

    Lower-case letters, digits and a dash only, so an MTA that folds the address to lower
    case (Postfix's pipe with flags=u) keeps it intact; the check means a made-up address
    cannot mark someone else's delivery as bounced.
    """
    return f"{delivery_id}-{_verp_check(delivery_id, campaign_key)}"


def _verp_check(delivery_id: int, campaign_key: str) -> str:
    return hashlib.sha256(f"verp:{campaign_key}:{delivery_id}".encode()).hexdigest()[:10]


_VERP_TOKEN_RE = re.compile(r"(\d{1,18})-([0-9a-f]{10})")
_MESSAGE_ID_RE = re.compile(r"<?[A-Za-z0-9-]+\.([0-9a-f]{16})\.(\d{1,18})@[^>\s]+>?")


def verp_pattern(config: Config) -> re.Pattern[str] | None:
    """A pattern that finds the token in a bounce address, or None without {token}."""
    template = config.sender_envelope
    if "{token}" not in template:
        return None
    before, _, after = template.partition("{token}")
    return re.compile(re.escape(before) + r"([A-Za-z0-9_.=-]{1,200})" + re.escape(after), re.IGNORECASE)


@dataclass(frozen=True)
class DeliveryRef:
    """A delivery a returned message was tied to, and how."""

    delivery_id: int
    campaign_id: int
    subscriber_id: int
    status: str
    via: str  # verp, message-id or recipient


def delivery_for_token(db: Database, token: str) -> DeliveryRef | None:
    """The delivery whose VERP token this is (checked), or None."""
    match = _VERP_TOKEN_RE.fullmatch(token.lower())
    if not match:
        return None
    delivery_id = int(match.group(1))
    row = db.execute(
        "SELECT d.id, d.campaign_id, d.subscriber_id, d.status, c.campaign_key FROM deliveries AS d"
        " JOIN campaigns AS c ON c.id = d.campaign_id WHERE d.id = ?",
        [delivery_id],
    ).fetchone()
    if row is None or _verp_check(delivery_id, row[4]) != match.group(2):
        return None
    return DeliveryRef(row[0], row[1], row[2], codes.name(row[3]), "verp")


class MessageIds:
    """Ties a returned Message-ID to its delivery: the ID holds a digest of the campaign's
    key and the subscriber id (message.make_message_id). Campaign digests are read once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._campaigns: dict[str, int] = {}
        self._seen = 0

    def _campaign_for(self, digest: str) -> int | None:
        if digest not in self._campaigns:
            count = self.db.execute("SELECT count(*) FROM campaigns").fetchone()[0]
            if count != self._seen:
                self._seen = count
                self._campaigns = {
                    hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]: cid
                    for cid, key in self.db.execute("SELECT id, campaign_key FROM campaigns")
                }
        return self._campaigns.get(digest)

    def delivery(self, message_id: str) -> DeliveryRef | None:
        """The delivery that sent the message with this Message-ID, or None."""
        match = _MESSAGE_ID_RE.fullmatch(message_id.strip())
        if not match:
            return None
        campaign_id = self._campaign_for(match.group(1))
        if campaign_id is None:
            return None
        row = self.db.execute(
            "SELECT id, campaign_id, subscriber_id, status FROM deliveries"
            " WHERE campaign_id = ? AND subscriber_id = ?",
            [campaign_id, int(match.group(2))],
        ).fetchone()
        if row is None:
            return None
        return DeliveryRef(row[0], row[1], row[2], codes.name(row[3]), "message-id")


def latest_delivery_to(db: Database, subscriber_id: int) -> DeliveryRef | None:
    """A subscriber's most recent delivery that left (sent, or bounced already), or None."""
    row = db.execute(
        "SELECT id, campaign_id, subscriber_id, status FROM deliveries"
        f" WHERE subscriber_id = ? AND status IN ({codes.in_list('sent', 'bounced', 'deferred')})"
        " ORDER BY id DESC LIMIT 1",
        [subscriber_id],
    ).fetchone()
    return DeliveryRef(row[0], row[1], row[2], codes.name(row[3]), "recipient") if row else None


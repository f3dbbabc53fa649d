"""The return mailbox: a corpus of bounces, complaints, unsubscribes and auto-replies written
from the published formats, each with the outcome it must have on a campaign that really
went out; then soft-bounce limits, duplicates, bad input and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bounce_helpers import SentSite
from send_helpers import server  # noqa: F401

from newsletter.audience.subscribers import erase
from newsletter.inbound.parse import MAX_BYTES
from newsletter.inbound.record import Recorder
from newsletter.inbound.report import build_report

# file, kind, detector, (severity, status) of the finding or None, how the delivery is
# found, subscriber status after, delivery status after, the event it writes (or None).
CORPUS_CASES = [
    ("postfix-user-unknown.eml", "bounce", "dsn", ("hard", "5.1.1"), "verp", "bounced", "bounced", "bounced"),
    ("postfix-delayed.eml", "bounce", "dsn", ("soft", "4.4.1"), "verp", "active", "bounced", "soft_bounce"),
    ("exim-failed.eml", "bounce", "flufl", ("hard", "5.2.1"), "message-id", "bounced", "bounced", "bounced"),
    ("sendmail-user-unknown.eml", "bounce", "dsn", ("hard", "5.1.1"), "message-id", "bounced", "bounced", "bounced"),
    ("qmail-no-mailbox.eml", "bounce", "flufl", ("hard", "5.1.1"), "verp", "bounced", "bounced", "bounced"),
    ("exchange-recipient-not-found.eml", "bounce", "dsn", ("hard", "5.1.10"), "verp", "bounced", "bounced", "bounced"),
    ("gmail-account-does-not-exist.eml", "bounce", "dsn", ("hard", "5.1.1"), "verp", "bounced", "bounced", "bounced"),
    ("gmail-unauthenticated-policy.eml", "bounce", "dsn", ("policy", "5.7.26"), "verp", "active", "bounced", "bounce"),
    ("yahoo-no-account.eml", "bounce", "flufl", ("hard", ""), "verp", "bounced", "bounced", "bounced"),
    ("non-utf8-latin1-dsn.eml", "bounce", "dsn", ("hard", "5.1.1"), "recipient", "bounced", "bounced", "bounced"),
    ("arf-abuse-complaint.eml", "complaint", "arf", None, "verp", "complained", "sent", "complained"),
    ("mailto-unsubscribe.eml", "unsubscribe", "mailto", None, None, "unsubscribed", "sent", "unsubscribed"),
    ("mailto-unsubscribe-token-in-address.eml", "unsubscribe", "mailto", None, None, "unsubscribed", "sent",
     "unsubscribed"),
    ("out-of-office.eml", "auto_reply", "auto-reply", None, None, "active", "sent", None),
    ("vacation-without-headers.eml", "auto_reply", "auto-reply", None, None, "active", "sent", None),
    ("no-structure.eml", "other", "", None, None, "active", "sent", None),
    ("truncated-dsn.eml", "bad", "", None, None, "active", "sent", None),
    ("binary.eml", "bad", "", None, None, "active", "sent", None),
]


@pytest.fixture
async def site(workdir: Path, server) -> SentSite:  # noqa: F811
    sent = SentSite(workdir, server)
    sent.campaign_id = await sent.send()  # type: ignore[attr-defined]
    return sent


@pytest.mark.parametrize(
    ("name", "kind", "detector", "finding", "via", "subscriber_after", "delivery_after", "event"),
    CORPUS_CASES,
    ids=[case[0].removesuffix(".eml") for case in CORPUS_CASES],
)
async def test_each_message_of_the_corpus_has_its_outcome(
    site: SentSite, name: str, kind: str, detector: str, finding: tuple[str, str] | None, via: str | None,
    subscriber_after: str, delivery_after: str, event: str | None,
) -> None:
    cid = site.campaign_id  # type: ignore[attr-defined]
    target, bystander = site.emails[1], site.emails[2]
    before = site.last_event_id()
    recorder = Recorder(site.config, site.db)
    parsed = recorder.parse(site.fill(name, cid, target))

    assert (parsed.kind, parsed.detector) == (kind, detector), parsed.reason
    if finding is not None:
        assert [(f.severity, f.status) for f in parsed.failures] == [finding]
        assert parsed.failures[0].recipient.lower() == target
    handled = recorder.record(parsed, via="maildir", location=name)

    assert site.status(target) == subscriber_after
    row = site.delivery(cid, target)
    assert row["status"] == delivery_after
    events = site.events(target, since=before)
    assert [k for k, _ in events] == ([event] if event else [])
    for _, detail in events:
        # The erasure promise: no address and no receiver's text in any event.
        text = json.dumps(detail)
        assert "@" not in text and "example" not in text
        if finding is not None:
            assert detail["severity"] == finding[0] and detail["status"] == finding[1]
            assert detail["via"] == via and detail["campaign"] == cid and detail["delivery"] == row["id"]
    if finding is not None:
        # The receiver's diagnostic is kept on the delivery row, with the status code.
        assert row["enhanced_code"] == (finding[1] or None) and row["reply_text"]
        assert row["reply_code"] == parsed.failures[0].code
    if kind in ("other", "bad"):
        assert handled.listed and handled.reason
    # Nobody else was touched.
    assert site.status(bystander) == "active" and site.delivery(cid, bystander)["status"] == "sent"
    assert site.events(bystander, since=before) == []


async def test_the_same_bounce_twice_counts_once(site: SentSite) -> None:
    cid = site.campaign_id  # type: ignore[attr-defined]
    target = site.emails[0]
    data = site.fill("postfix-delayed.eml", cid, target)
    recorder = Recorder(site.config, site.db)
    first = recorder.record(recorder.parse(data), via="pipe")
    # The copy a mailbox holds has other headers prepended and other line ends.
    copy = b"Delivered-To: bounces@example.nl\r\nReceived: from x by y\r\n" + data.replace(b"\n", b"\r\n")
    second = recorder.record(recorder.parse(copy), via="maildir")
    assert not first.duplicate and second.duplicate
    assert [k for k, _ in site.events(target)].count("soft_bounce") == 1


async def test_soft_bounces_suppress_at_the_limit_within_the_window(workdir: Path, server) -> None:  # noqa: F811
    site = SentSite(workdir, server, count=2, **{"bounces.soft_limit": 3})
    target = site.emails[0]
    recorder = Recorder(site.config, site.db)
    campaigns = [await site.send(again=True) for _ in range(3)]
    outcomes = []
    for number, cid in enumerate(campaigns):
        data = site.fill("postfix-delayed.eml", cid, target)
        data = data.replace(b"Message-Id: <", f"Message-Id: <{number}".encode())
        outcomes.append(recorder.record(recorder.parse(data), via="pipe").findings[0])
    assert [o.rpartition(": ")[2] for o in outcomes] == ["subscriber counted", "subscriber counted",
                                                         "subscriber suppressed"]
    assert site.status(target) == "bounced"
    kinds = [k for k, _ in site.events(target)]
    assert kinds[-3:] == ["soft_bounce", "soft_bounce", "bounced"]
    assert site.events(target)[-1][1]["soft_bounces"] == 3


async def test_soft_bounces_older_than_the_window_do_not_count(workdir: Path, server) -> None:  # noqa: F811
    site = SentSite(workdir, server, count=2, **{"bounces.soft_limit": 2, "bounces.soft_window": 7})
    target = site.emails[0]
    recorder = Recorder(site.config, site.db)
    old, new = await site.send(), await site.send(again=True)
    recorder.record(recorder.parse(site.fill("postfix-delayed.eml", old, target)), via="pipe")
    # That first soft bounce was eight days ago (events are append-only: rebuild the row's time).
    site.db.execute("DROP TRIGGER events_no_update")
    site.db.execute("UPDATE events SET at = datetime('now', '-8 days') WHERE kind = 'soft_bounce'")
    site.db.conn.commit()
    data = site.fill("postfix-delayed.eml", new, target).replace(b"Message-Id: <", b"Message-Id: <later")
    handled = recorder.record(recorder.parse(data), via="pipe")
    assert handled.findings[0].endswith("subscriber counted")
    assert site.status(target) == "active"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty message"),
        (b"From: a@example.org\n" + b"x" * (MAX_BYTES + 10), "too large"),
        (b"\x00\x01\x02 not mail at all \xff\xfe" * 100, "binary data"),
        (b"Subject: hi\nContent-Type: multipart/mixed; boundary=Q\n\n--Q\nContent-Type: text/plain\n\nhal",
         "malformed or truncated"),
        (b"just some words\nwithout headers\n", "does not start with header lines"),
    ],
    ids=["empty", "20-mb", "binary", "truncated", "no-headers"],
)
async def test_bad_input_is_listed_with_its_reason_and_changes_nothing(
    site: SentSite, data: bytes, reason: str
) -> None:
    if reason == "too large":
        data = data + b"y" * (20 * 1024 * 1024 - len(data))
    before = site.last_event_id()
    recorder = Recorder(site.config, site.db)
    handled = recorder.record(recorder.parse(data[: MAX_BYTES + 1], size=len(data)), via="maildir", location="x")
    assert handled.kind == "bad" and reason in handled.reason and handled.listed
    assert site.last_event_id() == before


async def test_a_verp_token_that_was_tampered_with_ties_to_no_delivery(site: SentSite) -> None:
    cid = site.campaign_id  # type: ignore[attr-defined]
    target = site.emails[0]
    data = site.fill("qmail-no-mailbox.eml", cid, target)
    row = site.delivery(cid, target)
    other = site.delivery(cid, site.emails[3])
    # Someone swaps in another delivery's id but cannot make its check: and the Message-ID
    # and address are gone too, so nothing may be guessed.
    forged = data.replace(f"bounces+{row['id']}-".encode(), f"bounces+{other['id']}-".encode())
    forged = forged.replace(row["message_id"].encode(), b"<unknown@example.nl>")
    forged = forged.replace(target.encode(), b"x@example.com")
    recorder = Recorder(site.config, site.db)
    handled = recorder.record(recorder.parse(forged), via="pipe")
    assert handled.matched == 0 and handled.listed
    assert site.status(site.emails[3]) == "active" and site.status(target) == "active"


async def test_the_report_counts_per_campaign_and_domain_without_addresses(site: SentSite) -> None:
    cid = site.campaign_id  # type: ignore[attr-defined]
    recorder = Recorder(site.config, site.db)
    for name, email in [("postfix-user-unknown.eml", site.emails[0]), ("postfix-delayed.eml", site.emails[1]),
                        ("arf-abuse-complaint.eml", site.emails[2]), ("no-structure.eml", site.emails[3])]:
        recorder.record(recorder.parse(site.fill(name, cid, email)), via="maildir", location=name)
    report: dict[str, Any] = build_report(site.db).as_dict()
    assert report["campaigns"] == [{"campaign": cid, "hard": 1, "soft": 1, "policy": 0, "complaints": 1,
                                    "unsubscribes": 0, "suppressed": 2}]
    assert report["domains"][0]["domain"] == "example.net" and report["domains"][0]["hard"] == 1
    assert {r["status"] for r in report["top_reasons"]} == {"5.1.1", "4.4.1"}
    assert report["suppressed_subscribers"] == {"bounced": 1, "complained": 1}
    assert report["messages"] == {"bounce": 2, "complaint": 1, "other": 1}
    assert [(r["kind"], r["location"]) for r in report["listed"]] == [("other", "no-structure.eml")]
    assert "lezer" not in json.dumps(report)
    assert build_report(site.db, campaign=cid + 1).as_dict()["campaigns"] == []


async def test_erasing_a_bounced_subscriber_leaves_their_address_nowhere(site: SentSite) -> None:
    cid = site.campaign_id  # type: ignore[attr-defined]
    target = site.emails[0]
    recorder = Recorder(site.config, site.db)
    for name in ("postfix-user-unknown.eml", "arf-abuse-complaint.eml", "exim-failed.eml"):
        recorder.record(recorder.parse(site.fill(name, cid, target)), via="maildir", location=name)
    assert site.delivery(cid, target)["reply_text"]  # the diagnostic (with the address) is kept...
    erase(site.db, target, source="cli", actor="test")
    # ...on the delivery row only, which erasing deletes: no table holds the address now.
    for (table,) in site.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        rows = site.db.execute(f"SELECT * FROM [{table}]").fetchall()
        assert target not in repr(rows) and target.partition("@")[0] not in repr(rows), table

"""Subscribers core: double opt-in, case-insensitive uniqueness, tokens, events, erasure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlite_utils import Database

from newsletter.audience import subscribers
from newsletter.db import open_db
from newsletter.errors import InvalidEmailError, NewsletterError, SubscriberNotFoundError


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(tmp_path / "subscribers.db")


def event_kinds(db: Database) -> list[tuple[str, str]]:
    return [(k, s) for k, s in db.execute("SELECT kind, source FROM events ORDER BY id")]


def test_a_new_subscriber_is_pending_with_a_long_random_token(db: Database) -> None:
    result = subscribers.subscribe(db, "Ann@Example.NL", name="Ann", language="nl")
    row = result.subscriber
    assert result.outcome == "created"
    assert (row["email"], row["name"], row["language"], row["status"], row["cadence"]) == (
        "Ann@example.nl", "Ann", "nl", "pending", "each")
    assert len(row["token"]) >= 22  # 18 random bytes, URL-safe base64: 144 bits
    other = subscribers.subscribe(db, "bob@example.nl").subscriber
    assert other["token"] != row["token"]
    assert row["consent_source"] == "cli" and row["consent_at"]
    assert event_kinds(db) == [("subscribed", "cli"), ("subscribed", "cli")]


def test_confirmed_subscribers_are_active_at_once(db: Database) -> None:
    row = subscribers.subscribe(db, "ann@example.nl", confirmed=True).subscriber
    assert row["status"] == "active" and row["confirmed_at"]


def test_addresses_are_unique_whatever_their_case_and_a_second_subscribe_changes_nothing(db: Database) -> None:
    first = subscribers.subscribe(db, "ann@example.nl", name="Ann").subscriber
    again = subscribers.subscribe(db, "ANN@EXAMPLE.NL", name="Other", confirmed=True)
    assert again.outcome == "exists"
    assert subscribers.get(db, "ann@example.nl") == first
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 1
    assert event_kinds(db) == [("subscribed", "cli")]


def test_an_unsubscribed_address_comes_back_only_by_an_explicit_logged_opt_in(db: Database) -> None:
    subscribers.subscribe(db, "ann@example.nl", confirmed=True)
    assert subscribers.unsubscribe(db, "ann@example.nl") == "unsubscribed"
    assert subscribers.unsubscribe(db, "ann@example.nl") == "already"
    result = subscribers.subscribe(db, "ann@example.nl")
    assert result.outcome == "resubscribed"
    assert result.subscriber["status"] == "pending"
    assert result.subscriber["unsubscribed_at"] is None
    kinds = event_kinds(db)
    assert kinds == [("subscribed", "cli"), ("unsubscribed", "cli"), ("resubscribed", "cli")]
    detail = json.loads(db.execute("SELECT detail FROM events ORDER BY id DESC LIMIT 1").fetchone()[0])
    assert detail == {"previous_status": "unsubscribed", "status": "pending"}


@pytest.mark.parametrize("address", ["", "ann@", "@example.nl", "ann example.nl", "ann@@example.nl", "a\r\nb@x.nl"])
def test_invalid_addresses_are_refused_and_nothing_is_stored(db: Database, address: str) -> None:
    with pytest.raises(InvalidEmailError):
        subscribers.subscribe(db, address)
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_name_with_a_line_break_is_refused(db: Database) -> None:
    with pytest.raises(NewsletterError, match="one line"):
        subscribers.subscribe(db, "ann@example.nl", name="Ann\r\nBcc: x@evil.example")
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0


@pytest.mark.parametrize("name", ["Ann\u2028Bcc: x@evil.example", "Ann\x85Bcc: x@evil.example", "Ann\u2029Bcc: x@evil.example"])
def test_a_name_with_a_unicode_line_break_is_refused_everywhere_it_is_set(db: Database, name: str) -> None:
    # message.py refuses these in the To header, so a stored one would stop every send.
    with pytest.raises(NewsletterError, match="one line"):
        subscribers.subscribe(db, "ann@example.nl", name=name)
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    subscribers.subscribe(db, "bob@example.nl", name="Bob")
    with pytest.raises(NewsletterError, match="one line"):
        subscribers.update(db, "bob@example.nl", name=name)
    assert subscribers.get(db, "bob@example.nl")["name"] == "Bob"


def test_confirm_activates_a_pending_subscriber_once(db: Database) -> None:
    subscribers.subscribe(db, "ann@example.nl")
    assert subscribers.confirm(db, "ann@example.nl") == "confirmed"
    assert subscribers.confirm(db, "ann@example.nl") == "already"
    assert subscribers.get(db, "ann@example.nl")["status"] == "active"
    assert event_kinds(db) == [("subscribed", "cli"), ("confirmed", "cli")]


def test_update_logs_that_the_name_changed_but_not_the_new_name(db: Database) -> None:
    subscribers.subscribe(db, "ann@example.nl", name="Ann")
    row = subscribers.update(db, "ann@example.nl", name="Anna", cadence="weekly")
    assert (row["name"], row["cadence"]) == ("Anna", "weekly")
    detail = db.execute("SELECT detail FROM events WHERE kind = 'changed'").fetchone()[0]
    assert json.loads(detail) == {"cadence": "weekly", "name": "(changed)"}
    assert "Anna" not in detail


def test_erase_keeps_only_a_hash_and_no_personal_data(db: Database) -> None:
    row = subscribers.subscribe(db, "Ann@example.nl", name="Ann de Vries", confirmed=True).subscriber
    subscribers.erase(db, "ann@example.nl")
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert subscribers.is_suppressed_hash(db, "ANN@example.nl")
    dump = "\n".join(db.conn.iterdump())
    assert "Ann" not in dump and "ann@" not in dump.lower()
    assert [k for k, _ in event_kinds(db)] == ["subscribed", "erased"]
    assert db.execute("SELECT DISTINCT subscriber_id FROM events").fetchall() == [(row["id"],)]


def test_an_erased_address_may_subscribe_again_explicitly(db: Database) -> None:
    subscribers.subscribe(db, "ann@example.nl")
    subscribers.erase(db, "ann@example.nl")
    result = subscribers.subscribe(db, "ann@example.nl")
    assert result.outcome == "resubscribed"
    assert not subscribers.is_suppressed_hash(db, "ann@example.nl")


def test_a_new_subscriber_never_inherits_an_erased_subscribers_id_or_history(db: Database) -> None:
    ann = subscribers.subscribe(db, "ann@example.nl", confirmed=True).subscriber
    subscribers.erase(db, "ann@example.nl")
    bob = subscribers.subscribe(db, "bob@example.nl", confirmed=True).subscriber
    assert bob["id"] != ann["id"]
    assert [e["kind"] for e in subscribers.events_for(db, bob["id"])] == ["subscribed"]
    assert [e["kind"] for e in subscribers.events_for(db, ann["id"])] == ["subscribed", "erased"]


def test_an_address_with_an_international_domain_is_found_in_any_case_and_form(db: Database) -> None:
    subscribers.subscribe(db, "ann@bücher.nl", confirmed=True)
    for typed in ("ann@bücher.nl", "Ann@BÜCHER.nl", "ann@xn--bcher-kva.nl"):
        assert subscribers.get(db, typed)["email"] == "ann@bücher.nl"
    assert subscribers.subscribe(db, "ANN@BÜCHER.NL").outcome == "exists"
    assert subscribers.unsubscribe(db, "ann@xn--bcher-kva.nl") == "unsubscribed"


def test_unknown_subscribers_are_reported_by_address(db: Database) -> None:
    with pytest.raises(SubscriberNotFoundError, match="no subscriber 'who@example.nl'"):
        subscribers.unsubscribe(db, "who@example.nl")


def test_counts_list_every_status(db: Database) -> None:
    subscribers.subscribe(db, "a@example.nl", confirmed=True)
    subscribers.subscribe(db, "b@example.nl")
    subscribers.subscribe(db, "c@example.nl", confirmed=True)
    subscribers.set_status(db, "c@example.nl", "bounced", source="bounce")
    assert subscribers.counts(db) == {
        "pending": 1, "active": 1, "unsubscribed": 0, "bounced": 1, "complained": 0}
    assert event_kinds(db)[-1] == ("bounced", "bounce")


def test_an_international_domain_is_kept_but_a_non_ascii_local_part_is_refused(db: Database) -> None:
    row = subscribers.subscribe(db, "ann@bücher.de").subscriber
    assert row["email"] == "ann@bücher.de"
    with pytest.raises(InvalidEmailError, match="Internationalized characters before the @-sign"):
        subscribers.subscribe(db, "zoë@example.nl")


# ---- through the links of `newsletter serve`: by token ----


def test_unsubscribe_by_token_is_idempotent_logs_once_and_leaves_bounced_alone(db: Database) -> None:
    ann = subscribers.subscribe(db, "ann@example.nl", confirmed=True, actor="t").subscriber
    assert subscribers.unsubscribe_by_token(db, ann["token"], source="web") == (ann["id"], "unsubscribed")
    assert subscribers.unsubscribe_by_token(db, ann["token"], source="web") == (ann["id"], "already")
    assert [e for e in event_kinds(db) if e[0] == "unsubscribed"] == [("unsubscribed", "web")]
    assert subscribers.unsubscribe_by_token(db, "no-such-token-at-all") is None
    bob = subscribers.subscribe(db, "bob@example.nl", confirmed=True, actor="t").subscriber
    subscribers.set_status(db, "bob@example.nl", "bounced", source="bounce", actor="t")
    assert subscribers.unsubscribe_by_token(db, bob["token"]) == (bob["id"], "already")
    assert subscribers.get(db, "bob@example.nl")["status"] == "bounced"


def test_confirm_by_token_confirms_pending_only(db: Database) -> None:
    ann = subscribers.subscribe(db, "ann@example.nl", actor="t").subscriber
    assert subscribers.confirm_by_token(db, ann["token"]) == "confirmed"
    assert subscribers.confirm_by_token(db, ann["token"]) == "already"
    subscribers.unsubscribe(db, "ann@example.nl", actor="t")
    assert subscribers.confirm_by_token(db, ann["token"]) is None  # an old link never brings one back
    assert subscribers.get(db, "ann@example.nl")["status"] == "unsubscribed"


def test_the_form_makes_left_addresses_pending_and_limits_confirmations_per_day(db: Database) -> None:
    subscribers.subscribe(db, "ann@example.nl", confirmed=True, actor="t")
    assert subscribers.subscribe_from_form(db, "ann@example.nl", per_day=2).outcome == "exists"
    subscribers.unsubscribe(db, "ann@example.nl", actor="t")
    first = subscribers.subscribe_from_form(db, "ann@example.nl", per_day=2)
    assert first.outcome == "resubscribed" and first.send_to is not None
    assert subscribers.get(db, "ann@example.nl")["status"] == "pending"
    assert subscribers.subscribe_from_form(db, "ann@example.nl", per_day=2).send_to == first.send_to
    assert subscribers.subscribe_from_form(db, "ann@example.nl", per_day=2) == subscribers.FormSubscription("limited", None)


def test_expired_pending_subscribers_are_deleted_and_one_who_had_left_stays_suppressed(db: Database) -> None:
    subscribers.subscribe(db, "new@example.nl", actor="t")
    subscribers.subscribe(db, "left@example.nl", confirmed=True, actor="t")
    subscribers.unsubscribe(db, "left@example.nl", actor="t")
    subscribers.subscribe_from_form(db, "left@example.nl")
    subscribers.subscribe(db, "fresh@example.nl", actor="t")
    db.execute("UPDATE subscribers SET consent_at = '2020-01-01T00:00:00+00:00' WHERE email != 'fresh@example.nl'")
    assert subscribers.expire_pending(db, older_than=7 * 86400) == 2
    assert subscribers.find(db, "new@example.nl") is None and subscribers.find(db, "left@example.nl") is None
    assert subscribers.find(db, "fresh@example.nl")["status"] == "pending"
    assert not subscribers.is_suppressed_hash(db, "new@example.nl")
    assert subscribers.is_suppressed_hash(db, "left@example.nl")
    assert [k for k, _ in event_kinds(db)].count("expired") == 2

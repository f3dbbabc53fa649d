"""Campaign creation: the delivery rows, re-send refusal, resumable creation, dry run."""

from __future__ import annotations

import sqlite3

import pytest
from send_helpers import add_subscribers, make_config, open_workdb, write_article

from newsletter.delivery.campaigns import (
    AlreadySentError,
    create_campaign,
    dry_run,
    get_campaign,
    make_owner,
    populate,
)
from newsletter.content.render import render_article
from newsletter.content.store import load_article


@pytest.fixture
def site(workdir):
    config = make_config(workdir, **{"smtp.url": "smtp+plain://127.0.0.1:2525"})
    db = open_workdb(config)
    return config, db, write_article(workdir)


def test_one_queued_row_per_active_subscriber_who_wants_each_article(site):
    config, db, article = site
    active = add_subscribers(db, 7)
    add_subscribers(db, 2, status="pending", start=100)
    add_subscribers(db, 2, status="unsubscribed", start=200)
    add_subscribers(db, 1, status="bounced", start=300)
    add_subscribers(db, 3, cadence="daily", start=400)
    campaign = create_campaign(config, db, article, owner=make_owner())
    assert (campaign.status, campaign.total, campaign.kind) == ("ready", 7, "article")
    assert campaign.lease_owner is None
    rows = db.execute(
        "SELECT s.email, d.status, d.attempts FROM delivery_rows d JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.campaign_id = ? ORDER BY s.email",
        [campaign.id],
    ).fetchall()
    assert rows == [(email, "queued", 0) for email in sorted(active)]


def test_rows_are_unique_per_campaign_and_subscriber(site):
    config, db, article = site
    add_subscribers(db, 2)
    campaign = create_campaign(config, db, article, owner=make_owner())
    sid = db.execute("SELECT subscriber_id FROM deliveries LIMIT 1").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO deliveries (campaign_id, subscriber_id) VALUES (?, ?)", [campaign.id, sid])


def test_the_rendered_emails_are_stored_so_a_resume_never_renders_again(site):
    config, db, article = site
    add_subscribers(db, 1)
    campaign = create_campaign(config, db, article, owner=make_owner())
    expected = render_article(load_article(db, article), config, language="nl")
    article.write_text(article.read_text(encoding="utf-8").replace("Zwolle", "Deventer"), encoding="utf-8")
    stored = get_campaign(db, campaign.id).rendered["nl"]
    assert stored == expected and "Zwolle" in stored.subject
    assert set(get_campaign(db, campaign.id).rendered) == {"nl", "en"}


def test_sending_an_article_again_is_refused_with_a_hint(site):
    config, db, article = site
    add_subscribers(db, 3)
    first = create_campaign(config, db, article, owner=make_owner())
    with db.conn:
        db.execute("UPDATE campaigns SET status = 'done' WHERE id = ?", [first.id])
    with pytest.raises(AlreadySentError, match=r"already sent as campaign 1 .*--again"):
        create_campaign(config, db, article, owner=make_owner())
    second = create_campaign(config, db, article, owner=make_owner(), again=True)
    assert second.id != first.id and second.campaign_key != first.campaign_key
    assert second.total == 3


def test_an_unfinished_campaign_is_resumed_not_doubled(site):
    config, db, article = site
    add_subscribers(db, 3)
    first = create_campaign(config, db, article, owner=make_owner())
    again = create_campaign(config, db, article, owner=make_owner(), again=True)
    assert again.id == first.id
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 3


def test_creation_interrupted_half_way_is_finished_by_the_next_run(site):
    config, db, article = site
    add_subscribers(db, 25)
    campaign = create_campaign(config, db, article, owner=make_owner())
    # As if the process died after the first chunk: some rows, status still 'creating'.
    with db.conn:
        db.execute("DELETE FROM deliveries WHERE id > (SELECT min(id) + 9 FROM deliveries)")
        db.execute("UPDATE campaigns SET status = 'creating', total = 0 WHERE id = ?", [campaign.id])
    assert populate(db, campaign.id, chunk=4) == 25
    assert get_campaign(db, campaign.id).status == "ready"
    count = db.execute("SELECT count(DISTINCT subscriber_id) FROM deliveries").fetchone()[0]
    assert count == 25


def test_a_dry_run_reports_and_writes_nothing(site):
    config, db, article = site
    emails = add_subscribers(db, 8)
    report = dry_run(config, db, article)
    assert report.count == 8 and report.sample == emails[:5]
    assert report.subject == "Waarom de fietsenmaker van Zwolle nu software schrijft"
    assert report.previous is None
    assert db.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_the_migration_adds_indexes_for_the_scheduler(site):
    _config, db, _article = site
    indexes = {i.name for i in db["deliveries"].indexes}
    assert {"deliveries_campaign_status", "deliveries_retry", "deliveries_subscriber"} <= indexes
    plan = " ".join(
        r[3] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM deliveries WHERE campaign_id = 1 AND status = 'queued'"
        )
    )
    assert "deliveries_campaign_status" in plan

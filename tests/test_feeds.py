"""Feeds: RSS and Atom over real HTTP on 127.0.0.1 and from files, each item stored once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feed_server import FeedServer
from sqlite_utils import Database

from newsletter.content.store import get_article
from newsletter.db import open_db
from newsletter.feeds.poll import (
    add_feed,
    get_feed,
    iter_items,
    list_feeds,
    poll_all,
    poll_feed,
    remove_feed,
)
from newsletter.feeds.read import FeedError, item_slug, parse

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def rss(*items: str, title: str = "Tech Blad") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://blad.example.nl/</link><description>d</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode("utf-8")


def rss_item(guid: str | None, title: str, *, body: str = "<p>Tekst.</p>", link: str | None = None,
             date: str = "Thu, 26 Nov 2026 09:00:00 +0100") -> str:
    parts = [f"<title>{title}</title>", f"<description><![CDATA[{body}]]></description>",
             f"<pubDate>{date}</pubDate>"]
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if link is not None:
        parts.append(f"<link>{link}</link>")
    return "<item>" + "".join(parts) + "</item>"


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom Blad</title>
  <id>urn:uuid:feed-1</id>
  <updated>2026-11-26T08:00:00Z</updated>
  <entry>
    <title type="html">Caf&amp;eacute; &amp;amp; &amp;lt;b&amp;gt;bits&amp;lt;/b&amp;gt;</title>
    <id>urn:uuid:entry-1</id>
    <link href="/artikel/cafe"/>
    <updated>2026-11-26T08:00:00Z</updated>
    <summary>Korte samenvatting met € en “quotes”.</summary>
    <content type="html">&lt;h2&gt;Kop&lt;/h2&gt;&lt;p&gt;Eerste &lt;b&gt;alinea&lt;/b&gt;.&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;ul&gt;&lt;li&gt;een&lt;/li&gt;&lt;li&gt;twee&lt;/li&gt;&lt;/ul&gt;&lt;p&gt;[link](javascript:alert(1)) *niet* vet&lt;/p&gt;</content>
  </entry>
</feed>
"""


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(tmp_path / "test.db")


@pytest.fixture
def server() -> Iterator[FeedServer]:
    running = FeedServer()
    yield running
    running.close()


def test_an_rss_feed_over_http_becomes_one_article_per_item(db: Database, server: FeedServer) -> None:
    server.pages["/feed.xml"] = (200, rss(
        rss_item("a-1", "Eerste bericht", body="<p>Hallo <em>wereld</em> &amp; meer.</p><p>Tweede.</p>",
                 link="https://blad.example.nl/eerste"),
        rss_item("a-2", "Tweede bericht", date="Thu, 26 Nov 2026 10:00:00 +0100"),
    ))
    feed = add_feed(db, f"{server.url}/feed.xml")
    assert feed["outcome"] == "added" and feed["title"] == "Tech Blad"
    result = poll_feed(db, feed["address"], at=NOW)
    assert result.error == ""
    assert len(result.new) == 2 and result.queued == 2
    first = get_article(db, result.new[0])
    assert first.title == "Eerste bericht"
    assert [b.text for b in first.blocks] == ["Hallo wereld & meer.", "Tweede.", "https://blad.example.nl/eerste"]
    assert "<em>" not in first.blocks[0].html and "&amp;" in first.blocks[0].html
    assert first.published == "2026-11-26T08:00:00+00:00"
    assert [i["link"] for i in iter_items(db, feed["address"])] == ["https://blad.example.nl/eerste", ""]
    assert get_feed(db, feed["address"])["items"] == 2


def test_a_feed_that_republishes_and_reorders_items_adds_nothing_twice(db: Database, server: FeedServer) -> None:
    one, two = rss_item("g-1", "Een"), rss_item("g-2", "Twee")
    server.pages["/f"] = (200, rss(one, two))
    address = add_feed(db, f"{server.url}/f")["address"]
    assert len(poll_feed(db, address, at=NOW).new) == 2
    # Re-published in another order, one item edited, one new item on top.
    edited = rss_item("g-1", "Een (bijgewerkt)", body="<p>Nieuwe tekst.</p>")
    server.pages["/f"] = (200, rss(rss_item("g-3", "Drie"), two, edited))
    again = poll_feed(db, address, at=NOW + timedelta(minutes=5))
    assert [get_article(db, s).title for s in again.new] == ["Drie"]
    assert again.seen == 2
    assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM digest_queue").fetchone()[0] == 3


def test_items_without_guid_are_keyed_by_link_then_by_content(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss(rss_item(None, "Met link", link="https://blad.example.nl/x"),
                         rss_item(None, "Zonder link", body="<p>Alleen tekst</p>")))
    address = add_feed(db, str(path))["address"]
    assert address == str(path.resolve())
    assert len(poll_feed(db, address, at=NOW).new) == 2
    keys = sorted(i["key"] for i in iter_items(db, address))
    assert keys[0].startswith("hash:") and keys[1] == "link:https://blad.example.nl/x"
    path.write_bytes(rss(rss_item(None, "Zonder link", body="<p>Alleen tekst</p>"),
                         rss_item(None, "Met link", link="https://blad.example.nl/x")))
    assert poll_feed(db, address, at=NOW).new == []


def test_an_atom_feed_from_a_file_is_reduced_to_escaped_text(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "atom.xml"
    path.write_text(ATOM, encoding="utf-8")
    address = add_feed(db, str(path))["address"]
    result = poll_feed(db, address, at=NOW)
    article = get_article(db, result.new[0])
    assert article.title == "Café & <b>bits</b>"
    assert article.summary == "Korte samenvatting met € en “quotes”."
    kinds_texts = [(b.kind, b.text) for b in article.blocks]
    assert kinds_texts == [
        ("heading", "Kop"),
        ("paragraph", "Eerste alinea."),
        ("list", "- een\n- twee"),
        ("paragraph", "[link](javascript:alert(1)) *niet* vet"),
    ]
    html = "".join(b.html for b in article.blocks)
    assert "<script" not in html and "alert(1)</script" not in html
    assert "href" not in html  # neither the javascript: link nor a relative one became markup


def test_a_malformed_feed_is_reported_and_the_others_are_still_polled(db: Database, tmp_path: Path,
                                                                       server: FeedServer) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(rss(rss_item("x", "Goed")))
    broken = tmp_path / "broken.xml"
    broken.write_text("<html><body>this is not a feed <p></body", encoding="utf-8")
    server.pages["/ok"] = (200, rss(rss_item("y", "Ook goed")))
    for address in (str(broken), str(good), f"{server.url}/ok", f"{server.url}/gone"):
        add_feed(db, address, check=False)
    results = {r.address: r for r in poll_all(db, at=NOW)}
    assert "not an RSS or Atom feed" in results[str(broken.resolve())].error
    assert "HTTP 404" in results[f"{server.url}/gone"].error
    assert len(results[str(good.resolve())].new) == 1
    assert len(results[f"{server.url}/ok"].new) == 1
    listed = {f["address"]: f for f in list_feeds(db)}
    assert "HTTP 404" in listed[f"{server.url}/gone"]["last_error"]
    assert listed[f"{server.url}/ok"]["last_error"] is None


def test_an_unreachable_feed_is_reported_not_raised(db: Database) -> None:
    add_feed(db, "http://127.0.0.1:9/feed.xml", check=False)  # discard port: refused
    [result] = poll_all(db, at=NOW, timeout=2)
    assert "cannot reach it" in result.error


def test_a_feed_that_is_no_http_server_or_no_url_is_reported_and_the_others_are_still_polled(
    db: Database, tmp_path: Path, server: FeedServer
) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_garbage() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")  # a port that is not a web server
        conn.close()

    threading.Thread(target=answer_garbage, daemon=True).start()
    garbage = f"http://127.0.0.1:{listener.getsockname()[1]}/feed.xml"
    server.pages["/ok"] = (200, rss(rss_item("y", "Goed")))
    for address in (garbage, "http://blad.example.nl/mijn feed.xml", f"{server.url}/ok"):
        add_feed(db, address, check=False)
    try:
        results = {r.address: r for r in poll_all(db, at=NOW, timeout=5)}
    finally:
        listener.close()
    assert "not a valid HTTP answer" in results[garbage].error
    assert "not a usable URL" in results["http://blad.example.nl/mijn feed.xml"].error
    assert len(results[f"{server.url}/ok"].new) == 1
    with pytest.raises(FeedError, match="not a usable URL"):
        add_feed(db, "http://blad.example.nl/andere feed.xml")


def test_adding_a_broken_feed_is_refused_with_the_reason(db: Database, tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no such file"):
        add_feed(db, str(tmp_path / "missing.xml"))
    with pytest.raises(FeedError, match="only http"):
        add_feed(db, "ftp://example.nl/feed.xml")
    assert list_feeds(db) == []


def test_adding_twice_changes_nothing_and_removing_keeps_the_items_known(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss(rss_item("k", "Eens")))
    address = add_feed(db, str(path))["address"]
    assert add_feed(db, str(path))["outcome"] == "exists"
    assert len(poll_feed(db, address, at=NOW).new) == 1
    remove_feed(db, "1")
    assert list_feeds(db) == []
    add_feed(db, str(path))
    assert poll_feed(db, address, at=NOW).new == []


def test_back_catalogue_items_are_stored_but_not_put_in_a_digest(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss(rss_item("old", "Oud", date="Mon, 02 Mar 2026 09:00:00 +0100"),
                         rss_item("new", "Nieuw")))
    address = add_feed(db, str(path))["address"]
    result = poll_feed(db, address, at=NOW)
    assert len(result.new) == 2 and result.queued == 1
    queued = db.execute("SELECT article_slug, released_at, source FROM digest_queue").fetchall()
    assert queued == [(result.new[1], NOW.isoformat(timespec="microseconds"), "feed")]


def test_the_item_slug_is_stable_and_distinct_per_feed() -> None:
    [item] = parse(rss(rss_item("same", "Zelfde titel")), address="a").items
    assert item_slug("a", item) == item_slug("a", item)
    assert item_slug("a", item) != item_slug("b", item)
    assert item_slug("a", item).startswith("zelfde-titel-")

"""Tests of newsletter.articles: parsing both formats, rejecting bad files, storing by slug."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from newsletter.content.article import Article, Block
from newsletter.content.checks import slugify, summarise
from newsletter.content.parse import parse_file, parse_text
from newsletter.content.store import add_article, get_article, list_articles, load_article
from newsletter.db import open_db
from newsletter.errors import ArticleError

FIXTURES = Path(__file__).parent / "fixtures"
DUTCH = FIXTURES / "zuinige-chips.txt"
DUTCH_CRLF_BOM = FIXTURES / "zuinige-chips-crlf-bom.txt"
ENGLISH_NO_SLUG = FIXTURES / "small-chips-no-slug.txt"
MARKDOWN = FIXTURES / "quiet-chips.md"

DUTCH_BLOCKS = [
    (
        "paragraph",
        "Een kleine chipontwerper uit Eindhoven wil hoortoestellen een hele week laten werken "
        "op één batterij. “We rekenen niet harder, we rekenen minder vaak”, zegt oprichter "
        "Anouk de Vries. Het bedrijf haalde dit voorjaar € 4,5 miljoen op bij investeerders "
        "uit de regio, genoeg voor twee jaar ontwikkeling.",
    ),
    (
        "paragraph",
        "De ideeën voor de chip ontstonden in een café naast de campus, waar promovendi hun "
        "financiële zorgen en technische dromen deelden. Twee jaar later werkt het team met "
        "negentien mensen aan de derde versie.",
    ),
    ("heading", "Eerst luisteren, dan rekenen"),
    (
        "paragraph",
        "Het principe is eenvoudig: de chip slaapt tot er spraak klinkt. Pas dan wordt het "
        "netwerk gewekt dat stemmen van ruis scheidt. Volgens het team van De Vries’ bedrijf "
        "scheelt dat zeventig procent stroom.",
    ),
    ("paragraph", "“Stilte kost bij ons bijna niets.”"),
    ("heading", "Samen met de regio"),
    (
        "paragraph",
        "De coördinatie met toeleveranciers in Brabant en Limburg noemt ze ‘het echte werk’. "
        "Een testlijn in Venlo draait sinds de zomer; daar worden de eerste duizend exemplaren "
        "gemaakt. Wie er meer over wil weten, kan op 12 maart langskomen op de open dag.",
    ),
]
DUTCH_SLUG = "techblad-zuid-zuinige-chips-maken-hoortoestellen-slimmer"


def kinds_and_texts(article: Article) -> list[tuple[str, str]]:
    return [(block.kind, block.text) for block in article.blocks]


def count_articles(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT count(*) FROM articles").fetchone()[0]


@pytest.fixture
def db(tmp_path: Path):
    database = open_db(tmp_path / "test.db")
    yield database
    database.conn.close()


# --- the plain-text export ---------------------------------------------------------------


def test_export_gives_publication_title_slug_and_signature() -> None:
    article = parse_file(DUTCH)
    assert article.publication == "Techblad Zuid"
    assert article.title == "Zuinige chips maken hoortoestellen slimmer"
    assert article.slug == DUTCH_SLUG
    assert article.signature == ("Anouk de Vries - Oprichter Stilchip", "Joris Peeters - CTO Stilchip")
    assert article.format == "text"
    assert article.source == str(DUTCH)


def test_export_gives_paragraphs_and_subheadings_in_order() -> None:
    assert kinds_and_texts(parse_file(DUTCH)) == DUTCH_BLOCKS


def test_export_drops_page_furniture_and_blank_no_break_space_lines() -> None:
    article = parse_file(DUTCH)
    everything = " ".join(b.text + b.html for b in article.blocks) + " ".join(article.signature)
    assert "Subscribe" not in everything
    assert "\u00a0" not in everything.replace("€\u00a0", "")
    assert all(block.text.strip() == block.text and block.text for block in article.blocks)


def test_export_keeps_curly_quotes_euro_and_accents_intact() -> None:
    article = parse_file(DUTCH)
    body = "\n".join(block.text for block in article.blocks)
    for text in ("“We rekenen", "vaak”", "Vries’", "‘het echte werk’", "€ 4,5", "één", "ideeën", "café", "coördinatie"):
        assert text in body
    assert "“We rekenen niet harder" in article.blocks[0].html


def test_export_with_crlf_and_bom_parses_like_the_plain_file() -> None:
    assert DUTCH_CRLF_BOM.read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in DUTCH_CRLF_BOM.read_bytes()
    plain, crlf = parse_file(DUTCH), parse_file(DUTCH_CRLF_BOM)
    assert crlf.title == plain.title
    assert crlf.slug == plain.slug
    assert crlf.blocks == plain.blocks
    assert crlf.signature == plain.signature
    assert crlf.content_hash != plain.content_hash  # the hash is of the bytes, which differ


def test_export_summary_is_the_first_paragraph_cut_at_a_word_boundary() -> None:
    summary = parse_file(DUTCH).summary
    assert summary == (
        "Een kleine chipontwerper uit Eindhoven wil hoortoestellen een hele week laten werken "
        "op één batterij. “We rekenen niet harder, we rekenen minder vaak”, zegt oprichter "
        "Anouk de Vries. Het bedrijf…"
    )
    assert len(summary) <= 201


def test_export_without_slug_line_derives_the_slug_from_the_title() -> None:
    article = parse_file(ENGLISH_NO_SLUG)
    assert article.publication == "Tech South Weekly"
    assert article.title == "Small chips, big savings: why hearing aids may soon last a week"
    assert article.slug == "small-chips-big-savings-why-hearing-aids-may-soon-last-a-week"
    assert article.signature == ("Ann Smith – Editor",)
    assert kinds_and_texts(article) == [
        (
            "paragraph",
            "A small chip designer from Eindhoven wants hearing aids to run for a whole week on "
            "one battery. The company raised €4.5 million this spring from investors in the region.",
        ),
        ("heading", "Listening first"),
        (
            "paragraph",
            "The chip sleeps until it hears speech. Only then does it wake the network that "
            "separates voices from noise; the team says that saves seventy percent of the power.",
        ),
        ("list", "- a test line in Venlo since the summer\n- the first thousand units this winter"),
    ]
    assert "Abonneer" not in " ".join(b.text for b in article.blocks)


def test_export_escapes_markup_in_the_text() -> None:
    text = (
        "Testblad\n\nEen titel met <b>vet</b>\n\neen-titel\n\n"
        'Hier staat <script>alert("x")</script> & meer.\n\nTussenkop\n\nNog een alinea.\n'
    )
    article = parse_text(text, source="script.txt")
    assert article.title == "Een titel met <b>vet</b>"  # text; the template escapes it
    assert article.blocks[0] == Block(
        kind="paragraph",
        text='Hier staat <script>alert("x")</script> & meer.',
        html="<p>Hier staat &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; meer.</p>",
    )
    assert article.blocks[1] == Block(kind="heading", text="Tussenkop", html="<h2>Tussenkop</h2>")


def test_short_line_is_a_paragraph_when_no_paragraph_follows_it() -> None:
    text = "Blad\n\nTitel hier\n\ntitel-hier\n\nEen alinea met een punt.\n\nLaatste korte regel\n"
    article = parse_text(text, source="x.txt")
    assert kinds_and_texts(article) == [
        ("paragraph", "Een alinea met een punt."),
        ("paragraph", "Laatste korte regel"),
    ]


def test_hyphenated_publication_name_is_not_mistaken_for_a_slug() -> None:
    article = parse_text("Tech-Nieuws\n\nEen titel\n\neen-titel\n\nTekst.\n", source="x.txt")
    assert (article.publication, article.title, article.slug) == ("Tech-Nieuws", "Een titel", "een-titel")
    with pytest.raises(ArticleError, match="the slug \\(line 5\\) 'Een-Titel' is not valid"):
        parse_text("Tech-Nieuws\n\nEen titel\n\nEen-Titel\n\nTekst.\n", source="x.txt")


def test_soft_wrapped_lines_join_into_one_paragraph() -> None:
    text = "Titel van het stuk\n\nEerste regel van de alinea\ntweede regel ervan.\n"
    article = parse_text(text, source="x.txt")
    assert article.publication == ""
    assert kinds_and_texts(article) == [("paragraph", "Eerste regel van de alinea tweede regel ervan.")]


# --- Markdown -----------------------------------------------------------------------------


def test_markdown_front_matter_fills_the_article() -> None:
    article = parse_file(MARKDOWN)
    assert article.format == "markdown"
    assert article.title == "Quiet chips: a week on one battery"
    assert article.slug == "quiet-chips-week-on-one-battery"
    assert article.summary == "An Eindhoven start-up’s chip sleeps until it hears speech."
    assert article.author == "Ann Smith"
    assert article.language == "en"
    assert article.published == "2026-11-20"
    assert article.signature == ()


def test_markdown_gives_one_block_per_top_level_construct() -> None:
    article = parse_file(MARKDOWN)
    assert [b.kind for b in article.blocks] == [
        "paragraph", "heading", "list", "quote", "code", "table", "image", "rule", "paragraph",
    ]
    texts = [b.text for b in article.blocks]
    assert texts[0] == (
        "A chip designer from Eindhoven wants hearing aids to run a whole week on one battery. "
        "It raised €4.5 million; read the full report (https://example.nl/report) or write to "
        "the editors (redactie@example.nl)."
    )
    assert texts[1] == "How it works"
    assert texts[2] == (
        "- The chip sleeps until it hears speech\n"
        "- Then it wakes the network:\n"
        "  1. separate voices from noise\n"
        "  2. send the result to the ear"
    )
    assert texts[3] == "> “Silence costs us almost nothing,” says the café owner’s daughter."
    assert texts[4] == "if speech_detected():\n    wake(network)"
    assert texts[5] == (
        "Version | Battery life | Price\n"
        "1       | 2 days       | € 40\n"
        "3       | 7 days       | € 35"
    )
    assert texts[6] == "Prototype chip on a fingertip"
    assert texts[7] == "---"


def test_markdown_html_has_emphasis_links_and_structure() -> None:
    blocks = parse_file(MARKDOWN).blocks
    assert "<em>a whole week</em>" in blocks[0].html
    assert "<strong>one battery</strong>" in blocks[0].html
    assert '<a href="https://example.nl/report">full report</a>' in blocks[0].html
    assert '<a href="mailto:redactie@example.nl">the editors</a>' in blocks[0].html
    assert blocks[1].html == "<h2>How it works</h2>"
    assert blocks[2].html.startswith("<ul>") and "<ol>" in blocks[2].html
    assert blocks[3].html.startswith("<blockquote>")
    assert blocks[4].html.startswith('<pre><code class="language-python">')
    assert "<th>Battery life</th>" in blocks[5].html and "<td>€ 35</td>" in blocks[5].html
    assert blocks[6].html == '<p><img src="https://example.nl/img/chip.jpg" alt="Prototype chip on a fingertip" /></p>'
    assert blocks[7].html == "<hr />"


def test_markdown_script_and_javascript_links_arrive_as_escaped_text() -> None:
    last = parse_file(MARKDOWN).blocks[-1]
    assert "<script" not in last.html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in last.html
    assert "href" not in last.html  # the javascript: link is not a link
    assert '<script>alert("x")</script>' in last.text


def test_markdown_takes_the_title_from_a_leading_heading_without_front_matter() -> None:
    article = parse_text("# Wat’s nieuw in €-land\n\nEerste alinea.\n", source="nieuw.md")
    assert article.title == "Wat’s nieuw in €-land"
    assert article.slug == "wats-nieuw-in-euro-land"
    assert kinds_and_texts(article) == [("paragraph", "Eerste alinea.")]
    assert article.summary == "Eerste alinea."


def test_markdown_is_detected_by_front_matter_whatever_the_extension() -> None:
    article = parse_text("---\ntitle: Hallo\n---\nTekst.\n", source="notitie.txt")
    assert article.format == "markdown"
    assert article.slug == "hallo"
    crlf = parse_text("\ufeff---  \r\ntitle: Hallo\r\n---\r\nTekst.\r\n", source="notitie.txt")
    assert crlf.format == "markdown"
    assert crlf.blocks == article.blocks


def test_markdown_date_with_time_is_kept_as_iso() -> None:
    text = "---\ntitle: T\ndate: 2026-11-20 09:30:00+01:00\n---\nTekst.\n"
    assert parse_text(text, source="t.md").published == "2026-11-20T09:30:00+01:00"


def test_markdown_relative_and_data_links_are_not_links() -> None:
    text = "---\ntitle: T\n---\n[rel](/pad) [data](data:text/html,x) [ok](https://a.nl)\n"
    block = parse_text(text, source="t.md").blocks[0]
    assert block.html.count("<a ") == 1
    assert '<a href="https://a.nl">ok</a>' in block.html


# --- helpers --------------------------------------------------------------------------------


def test_slugify_drops_accents_quotes_and_punctuation() -> None:
    assert slugify("Één café, “twee” ideeën!") == "een-cafe-twee-ideeen"
    assert slugify("€ 5 voor AI") == "euro-5-voor-ai"
    assert slugify("“”!?") == ""


def test_summarise_leaves_short_text_alone_and_cuts_long_text_between_words() -> None:
    assert summarise("Kort.") == "Kort."
    cut = summarise("woord " * 100, limit=30)
    assert cut == "woord woord woord woord woord…"


# --- bad input ------------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty.txt": (b"", "is empty"),
    "blank.txt": ("  \n\u00a0\n\r\n".encode(), "is empty"),
    "only-furniture.txt": (b"Subscribe by email\n", "has no title"),
    "paragraph-first.txt": (("Dit is een lange alinea zonder titel erboven. " * 6).encode(), "has no title"),
    "slug-first.txt": (b"alleen-een-slug\n\nTekst.\n", "has no title"),
    "no-body.txt": (b"Blad\n\nTitel hier\n\ntitel-hier\n\nSubscribe by email\n", "has no body"),
    "cp1252.txt": ("Blad\n\nCaf\u00e9 open\n\ncafe-open\n\nTekst.\n".encode("cp1252"), "is not UTF-8 text: byte 0xe9 at offset 9"),
    "binary.txt": (b"Blad\n\x00\x01\x02\xff", "is a binary file"),
    "title-escape.txt": (b"Blad\n\nTitel\x1b[31m rood\n\ntitel-rood\n\nTekst.\n", "title (line 3) contains the control character U+001B"),
    "title-separator.txt": ("Blad\n\nTitel\u2028Bcc: x@example.nl\n\ntitel\n\nTekst.\n".encode(), "title (line 3) contains a line break"),
    "title-cr.txt": (b"Blad\r\n\r\nTitel\rBcc: x@example.nl\r\n\r\ntitel\r\n\r\nTekst.\r\n", "title (line 3) contains a line break"),
    "body-cr.txt": (b"Blad\n\nTitel\n\ntitel-x\n\nEen\rtwee.\n", "line 7, column 4 contains a carriage return without a line feed"),
    "bad-slug.txt": (b"Blad\n\nTitel\n\nTitel_Met_Hoofdletters\n\nTekst.\n", "the slug (line 5) 'Titel_Met_Hoofdletters' is not valid"),
    "body-control.txt": (b"Blad\n\nTitel\n\ntitel\n\nTekst \x07 bel.\n", "line 7, column 7 contains the control character U+0007"),
    "newline-title.md": (b'---\ntitle: "Hallo\\nBcc: x@example.nl"\n---\nTekst.\n', "the title (front matter) contains a line break"),
    "cr-title.md": (b'---\ntitle: "Hallo\\rBcc: x@example.nl"\n---\nTekst.\n', "the title (front matter) contains a line break"),
    "block-title.md": (b"---\ntitle: |\n  Hallo\n  daar\n---\nTekst.\n", "contains a line break"),
    "no-title.md": (b"---\nsummary: Iets\n---\nTekst.\n", "has no title"),
    "unknown-key.md": (b"---\ntitle: T\ntags: [a]\nautor: Ann\n---\nTekst.\n", "unknown front matter keys 'tags', 'autor' (did you mean 'author'?)"),
    "bad-yaml.md": (b"---\ntitle: T\nsummary: [niet dicht\n---\nTekst.\n", "the front matter is not valid YAML"),
    "not-a-mapping.md": (b"---\n- een\n- lijst\n---\nTekst.\n", "must be `key: value` lines"),
    "unclosed.md": (b"---\ntitle: T\n\nTekst.\n", "is never closed"),
    "bad-date.md": (b"---\ntitle: T\ndate: 2026-13-45\n---\nTekst.\n", "front matter date '2026-13-45' is not a date"),
    "bool-title.md": (b"---\ntitle: yes\n---\nTekst.\n", "'title' must be text, not bool"),
    "bad-lang.md": (b"---\ntitle: T\nlang: de\n---\nTekst.\n", "lang 'de' is not supported"),
    "bad-md-slug.md": (b"---\ntitle: T\nslug: Met Spaties\n---\nTekst.\n", "the slug (front matter) 'Met Spaties' is not valid"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_with_its_name_and_the_reason(tmp_path: Path, name: str) -> None:
    data, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ArticleError) as caught:
        parse_file(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_stores_nothing_through_load_article(tmp_path: Path, db, name: str) -> None:
    data, _ = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ArticleError):
        load_article(db, path)
    assert count_articles(tmp_path / "test.db") == 0


def test_not_utf8_error_suggests_encoding_and_encoding_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.txt"
    path.write_bytes("Blad\n\nCaf\u00e9 open\n\ncafe-open\n\nPrijs: \u20ac 5.\n".encode("cp1252"))
    with pytest.raises(ArticleError, match="--encoding"):
        parse_file(path)
    article = parse_file(path, encoding="cp1252")
    assert article.title == "Café open"
    assert article.blocks[0].text == "Prijs: € 5."


def test_not_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfTitel\n\nCaf\xe9\n")
    with pytest.raises(ArticleError, match="byte 0xe9 at offset 13"):
        parse_file(path)


def test_unknown_encoding_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"Titel\n\nTekst.\n")
    with pytest.raises(ArticleError, match="unknown encoding 'klingon'"):
        parse_file(path, encoding="klingon")


def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(ArticleError, match="cannot read .*nergens.txt"):
        parse_file(tmp_path / "nergens.txt")
    with pytest.raises(ArticleError, match="is a folder"):
        parse_file(tmp_path)


# --- storage --------------------------------------------------------------------------------


def test_migration_creates_the_articles_table(db) -> None:
    columns = {column.name: column.notnull for column in db["articles"].columns}
    assert list(columns) == [
        "id", "slug", "title", "summary", "format", "language", "author", "published_at",
        "source_file", "source_text", "content_hash", "created_at", "updated_at", "sent_at",
    ]
    assert columns["sent_at"] == 0 and columns["slug"] == 1
    assert "0003_articles" in {row["name"] for row in db["_sqlite_migrations"].rows}


def test_added_article_is_stored_and_read_back_identical(db) -> None:
    article = parse_file(DUTCH)
    result = add_article(db, article)
    assert result.action == "added"
    assert result.message == f"added {DUTCH_SLUG}: Zuinige chips maken hoortoestellen slimmer"
    stored = get_article(db, DUTCH_SLUG)
    assert stored == article
    assert stored.content_hash == article.content_hash
    row = db.execute("SELECT source_text, sent_at, created_at FROM articles").fetchone()
    assert row[0] == DUTCH.read_text(encoding="utf-8")
    assert row[1] is None
    assert row[2].endswith("+00:00")


def test_adding_the_same_file_again_is_a_no_op(db, tmp_path: Path) -> None:
    add_article(db, parse_file(DUTCH))
    before = db.execute("SELECT * FROM articles").fetchall()
    again = add_article(db, parse_file(DUTCH))
    assert again.action == "unchanged"
    assert "unchanged" in again.message
    assert db.execute("SELECT * FROM articles").fetchall() == before


def test_changed_unsent_article_is_updated(db, tmp_path: Path) -> None:
    add_article(db, parse_file(DUTCH))
    changed = tmp_path / "zuinige-chips.txt"
    changed.write_text(DUTCH.read_text(encoding="utf-8").replace("negentien", "twintig"), encoding="utf-8")
    result = add_article(db, parse_file(changed))
    assert result.action == "updated"
    assert "twintig mensen" in get_article(db, DUTCH_SLUG).blocks[1].text
    assert count_articles(tmp_path / "test.db") == 1


def test_changed_sent_article_is_refused_without_force(db, tmp_path: Path) -> None:
    add_article(db, parse_file(DUTCH))
    db.execute("UPDATE articles SET sent_at = '2026-11-26T10:00:00+00:00'")
    db.conn.commit()
    changed = tmp_path / "zuinige-chips.txt"
    changed.write_text(DUTCH.read_text(encoding="utf-8").replace("negentien", "twintig"), encoding="utf-8")
    with pytest.raises(ArticleError, match="was already sent .* use --force"):
        add_article(db, parse_file(changed))
    assert "negentien" in get_article(db, DUTCH_SLUG).blocks[1].text

    result = add_article(db, parse_file(changed), force=True)
    assert result.action == "updated"
    assert "twintig" in get_article(db, DUTCH_SLUG).blocks[1].text
    assert db.execute("SELECT sent_at FROM articles").fetchone()[0] == "2026-11-26T10:00:00+00:00"


def test_unchanged_sent_article_is_a_no_op_without_force(db) -> None:
    add_article(db, parse_file(DUTCH))
    db.execute("UPDATE articles SET sent_at = '2026-11-26T10:00:00+00:00'")
    db.conn.commit()
    assert add_article(db, parse_file(DUTCH)).action == "unchanged"


def test_unknown_slug_is_named_with_a_hint(db) -> None:
    with pytest.raises(ArticleError, match="no article with slug 'bestaat-niet'; see `newsletter articles list`"):
        get_article(db, "bestaat-niet")


def test_list_articles_gives_metadata_newest_first_without_the_text(db) -> None:
    add_article(db, parse_file(DUTCH))
    add_article(db, parse_file(MARKDOWN))
    rows = list_articles(db)
    assert [row["slug"] for row in rows] == ["quiet-chips-week-on-one-battery", DUTCH_SLUG]
    assert rows[0]["format"] == "markdown" and rows[0]["language"] == "en"
    assert rows[0]["published_at"] == "2026-11-20" and rows[0]["author"] == "Ann Smith"
    assert "source_text" not in rows[0]


def test_load_article_adds_a_file_and_finds_a_slug(db, tmp_path: Path) -> None:
    article = load_article(db, MARKDOWN)
    assert count_articles(tmp_path / "test.db") == 1
    assert load_article(db, article.slug) == article
    assert load_article(db, str(MARKDOWN)) == article  # the same file again: still one row
    assert count_articles(tmp_path / "test.db") == 1


def test_load_article_names_what_it_could_not_find(db) -> None:
    with pytest.raises(ArticleError, match="'nog-niet' is neither a file nor a stored article"):
        load_article(db, "nog-niet")
    with pytest.raises(ArticleError, match="no such file: artikelen/weg.txt"):
        load_article(db, "artikelen/weg.txt")


def test_markdown_read_with_another_encoding_is_stored_decoded(db, tmp_path: Path) -> None:
    path = tmp_path / "latin.md"
    path.write_bytes("---\ntitle: Ideeën\n---\nCafé.\n".encode("latin-1"))
    add_article(db, parse_file(path, encoding="latin-1"))
    stored = get_article(db, "ideeen")
    assert stored.title == "Ideeën"
    assert stored.blocks[0].text == "Café."


def test_utf16_file_is_named_as_such_and_reads_with_encoding(tmp_path: Path) -> None:
    path = tmp_path / "utf16.txt"
    path.write_bytes("Blad\n\nIdeeën\n\nideeen\n\nTekst.\n".encode("utf-16"))
    with pytest.raises(ArticleError, match="is UTF-16 text, not UTF-8; read it with --encoding utf-16"):
        parse_file(path)
    assert parse_file(path, encoding="utf-16").title == "Ideeën"


# The publisher's real export lives outside the repository (shared/seed, beside the clone
# in CI). Its text is not copied here: the expectations are read from the file itself.
# (Worktrees of developers sit one folder deeper, hence two candidates.)
SEED = next(
    (
        candidate
        for parent in Path(__file__).resolve().parents[2:4]
        if (candidate := parent / "shared" / "seed" / "tech2b-article.txt").is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "seed" / "tech2b-article.txt",
)


@pytest.mark.skipif(not SEED.is_file(), reason=f"the seed article is not at {SEED}")
def test_the_real_export_parses_into_its_structure() -> None:
    raw = [line.strip() for line in SEED.read_text(encoding="utf-8").split("\n")]
    lines = [line for line in raw if line]
    article = parse_file(SEED)
    assert (article.publication, article.title, article.slug) == tuple(lines[:3])
    assert article.signature == tuple(line for line in lines if " - " in line and len(line) < 60)
    assert len(article.signature) == 2
    assert lines[-1] == "Subscribe by email"
    assert all("Subscribe" not in block.text for block in article.blocks)
    kinds = [block.kind for block in article.blocks]
    assert kinds == ["paragraph", "paragraph"] + ["heading", "paragraph"] * 4
    texts = [block.text for block in article.blocks]
    assert texts == [line for line in lines[3:-3]]  # every body line, in order, untouched


def test_a_yaml_title_with_an_escaped_surrogate_pair_is_refused_with_what_to_write() -> None:
    # YAML's "\ud83c\udf89" gives two lone halves; they would crash at the database.
    with pytest.raises(ArticleError, match=r"U\+D83C, half of a character.*write the character itself"):
        parse_text('---\ntitle: "Feest \\ud83c\\udf89"\n---\nTekst.\n', source="feest.md")
    assert parse_text('---\ntitle: "Feest \\U0001F389"\n---\nTekst.\n', source="feest.md").title == "Feest 🎉"

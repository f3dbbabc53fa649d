"""Content findings for one article, built as a send would build it (preview's path): HTML
size against Gmail's clip, images without alt text, http:// links, the unsubscribe link in
both parts, the same words in text and HTML, and SpamAssassin's score when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

from ..config import Config
from ..content.preview import GMAIL_CLIP_BYTES, PreviewMessage
from ..content.render import unsubscribe_url
from .findings import Finding, fail, ok, warn

CHECK = "content"
SPAM_WARN = 1.0
SPAM_FAIL = 5.0
WORDS_DIFFER = 0.10  # share of distinct words in one part only above which SpamAssassin sees MPART_ALT_DIFF
SPAMASSASSIN_TIMEOUT = 120.0
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+|\bmailto:\S+", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")  # words of letters; digits and single letters say little
_HIDDEN = ("head", "style", "script", "title")


class _Html(HTMLParser):
    """Links, images and the visible words of an email's HTML (the preheader is hidden text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._hidden = 0
        self._stack: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag == "img":
            self.images.append(values)
            return  # a void element: no end tag follows
        hidden = tag in _HIDDEN or "preheader" in (values.get("class") or "").split()
        if tag in ("br", "meta", "link", "hr", "input"):
            return
        self._stack.append((tag, hidden))
        self._hidden += hidden

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            opened, hidden = self._stack.pop()
            self._hidden -= hidden
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(_URL.sub(" ", text))}


def content_findings(message: PreviewMessage, config: Config, *, subject: str) -> list[Finding]:
    """Every content finding for the built message (DKIM signature and all)."""
    parsed = _Html()
    parsed.feed(message.html)
    parsed.close()
    return [
        _size(message, subject),
        _images(parsed, subject),
        _links(parsed, message.text, subject),
        _unsubscribe(parsed, message, config, subject),
        _same_words(parsed, message.text, subject),
        spamassassin(message.data, subject=subject),
    ]


def _size(message: PreviewMessage, subject: str) -> Finding:
    size = len(message.html.encode("utf-8"))
    shown = f"the HTML part is {size / 1024:.1f} KB"
    if size > GMAIL_CLIP_BYTES:
        return fail(CHECK, subject, f"{shown}: Gmail clips it above 102 KB and hides the rest, unsubscribe link "
                    "included", "shorten the article, or send its summary with a link to the web view")
    return ok(CHECK, subject, f"{shown} (Gmail clips above 102 KB)")


def _images(parsed: _Html, subject: str) -> Finding:
    bare = [str(img.get("src") or "?") for img in parsed.images if not (img.get("alt") or "").strip()]
    if bare:
        return warn(CHECK, subject, f"{len(bare)} of {len(parsed.images)} images have no alt text "
                    f"(first: {bare[0]}); readers who block images see nothing", "give every image a description "
                    "(the alt text in ![text](src))")
    return ok(CHECK, subject, f"every image has alt text ({len(parsed.images)} images)")


def _links(parsed: _Html, text: str, subject: str) -> Finding:
    in_text = [url.rstrip(".,;:!?)]>'\"") for url in _URL.findall(text)]  # "(see https://x/y)." ends at y
    sources = parsed.links + [str(img.get("src") or "") for img in parsed.images] + in_text
    plain = sorted({url for url in sources if url.lower().startswith("http://")})
    if plain:
        many = f"{len(plain)} links use" if len(plain) > 1 else "1 link uses"
        return warn(CHECK, subject, f"{many} http:// (first: {plain[0]}); filters and browsers distrust them",
                    "link to https:// addresses in the article (and in publication.site_url)")
    return ok(CHECK, subject, f"every link uses https:// ({len(set(sources))} links)")


def _unsubscribe(parsed: _Html, message: PreviewMessage, config: Config, subject: str) -> Finding:
    url = unsubscribe_url(config, message.recipient.token)
    missing = [part for part, found in (("text", url in message.text), ("HTML", url in parsed.links)) if not found]
    if missing:
        return fail(CHECK, subject, f"the unsubscribe link is missing from the {' and '.join(missing)} part",
                    "keep {{ unsubscribe_url }} in templates/base.txt and templates/base.html")
    return ok(CHECK, subject, f"the unsubscribe link is in both parts ({url})")


def _same_words(parsed: _Html, text: str, subject: str) -> Finding:
    html_words, text_words = words(" ".join(parsed.text)), words(text)
    every = html_words | text_words
    only_html, only_text = sorted(html_words - text_words), sorted(text_words - html_words)
    share = (len(only_html) + len(only_text)) / len(every) if every else 0.0
    if share > WORDS_DIFFER:
        sample = ", ".join((only_html or only_text)[:5])
        return warn(CHECK, subject, f"{share:.0%} of the words are in one part only (e.g. {sample}); "
                    "SpamAssassin flags a text part that is not the HTML's words (MPART_ALT_DIFF)",
                    "put the same content in templates/*.txt as in templates/*.html")
    return ok(CHECK, subject, f"text and HTML have the same words ({len(every)} distinct, {share:.0%} in one "
              "part only)")


def spamassassin(data: bytes, *, subject: str) -> Finding:
    """SpamAssassin's score with local tests only (-L: no network look-ups)."""
    tool = shutil.which("spamassassin")
    if tool is None:
        return warn(CHECK, subject, "spamassassin is not installed, so the message was not scored",
                    "install it (apt-get install spamassassin) and run the check again")
    try:
        result = subprocess.run([tool, "-L", "-t"], input=data, capture_output=True, timeout=SPAMASSASSIN_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return warn(CHECK, subject, f"spamassassin did not score the message: {exc}", "run the check again")
    output = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: (.*?)\r?\n(?=\S)", output, re.S | re.M)
    score = re.search(r"score=(-?[\d.]+)", " ".join(status.group(1).split())) if status else None
    if status is None or score is None:
        error = result.stderr.decode("utf-8", "replace").strip().splitlines()
        return warn(CHECK, subject, f"spamassassin gave no score{': ' + error[-1] if error else ''}",
                    "run `spamassassin -L -t < message.eml` by hand to see why")
    unfolded = " ".join(status.group(1).split())
    # the list of rules is folded over lines like the rest: "tests=A,\n\tB,C autolearn=..."
    tests = re.search(r"tests=(.*?)(?= [a-z_]+=|$)", unfolded)
    rules = [r.strip() for r in (tests.group(1).split(",") if tests else []) if r.strip() not in ("", "none")]
    value = float(score.group(1))
    shown = f"SpamAssassin scores it {value:g} (rules: {', '.join(rules) or 'none'})"
    if value > SPAM_FAIL:
        return fail(CHECK, subject, f"{shown}: above {SPAM_FAIL:g}, most filters reject or junk it",
                    "fix what the rules above point at (`spamassassin -L -t < message.eml` explains each)")
    if value > SPAM_WARN:
        return warn(CHECK, subject, f"{shown}: above {SPAM_WARN:g}", "fix what the rules above point at "
                    "(`spamassassin -L -t < message.eml` explains each)")
    return ok(CHECK, subject, shown)

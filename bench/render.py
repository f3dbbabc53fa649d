"""Benchmark of rendering and per-recipient message building; prints figures, asserts nothing.

Figures, each next to a reference measured in the same run on the same machine:
- render + inline one campaign (Jinja2 + premailer), against Jinja2 alone;
- per-recipient personalisation + bytes (MessageBuilder.build), without and with DKIM,
  against building the same message with EmailMessage (set_content/add_alternative,
  quoted-printable) and as_bytes(), the obvious way it would otherwise be done;
- the same build with names in To that need RFC 2047 encoded-words, against ASCII names.

Run: .venv/bin/python bench/render.py   (uses the seed-shaped article of tests/render_fixtures.py)
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test fixtures hold the seed-shaped article

from render_fixtures import make_config, seed_shaped_article  # noqa: E402

from newsletter.content.dkim import generate_key_pair  # noqa: E402
from newsletter.content.message import MessageBuilder, Recipient  # noqa: E402
from newsletter.content.render import (  # noqa: E402
    _environment,
    _strings_for,
    _template_dirs,
    _translator,
    render_article,
    unsubscribe_url,
)
from newsletter.scaffold import init_directory  # noqa: E402


def timed(func: Callable[[int], object], count: int, repeat: int = 5) -> float:
    """Best-of-`repeat` seconds per call of func(i) over `count` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(count):
            func(i)
        best = min(best, (time.perf_counter() - start) / count)
    return best


def recipients(n: int) -> list[Recipient]:
    return [
        Recipient(subscriber_id=i, email=f"lezer{i}@example.nl", name=f"Lezer Nummer {i}",
                  token=f"tok{i:08d}abcdefghijklmnopqrstuvwxyzABCD", language="nl")
        for i in range(n)
    ]


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-render-"))
    directory = base / "site"
    init_directory(directory, values={
        "publication.name": "Techblad Noord", "sender.name": "Techblad Noord",
        "sender.address": "nieuws@example.nl", "publication.language": "nl",
        "publication.postal_address": "Zernikeplein 11, 9747 AS Groningen",
    })
    config = make_config(directory)
    article = seed_shaped_article()

    # --- one campaign: templates + premailer, against templates alone
    render_article(article, config, language="nl")  # warm the template cache
    env = _environment(_template_dirs(config))
    template = env.get_template("article.html")
    strings = _strings_for(config, "nl")
    context = {
        "publication": config.publication_name, "site_url": config.publication_site_url,
        "postal_address": "x", "unsubscribe_url": "u", "name": "n", "email": "e",
        "t": _translator(strings, {"publication": config.publication_name}),
        "title": article.title, "blocks": [{"kind": b.kind, "text": b.text, "html": b.html} for b in article.blocks],
        "signature": list(article.signature), "author": None, "published": None, "byline": None,
        "preheader": "p", "web_url": "w", "lang": "nl", "preferences_url": "p",
        "logo_url": config.publication_logo_url, "logo_width": config.publication_logo_width,
        "logo_height": config.publication_logo_height,
    }
    jinja_only = timed(lambda i: template.render(context), 50)
    full = timed(lambda i: render_article(article, config, language="nl"), 10, repeat=3)
    rendered = render_article(article, config, language="nl")

    # --- per recipient: our builder, against EmailMessage.as_bytes()
    people = recipients(5000)
    builder = MessageBuilder(config, {"nl": rendered}, campaign_key="article:bench")
    ours = timed(lambda i: builder.build(people[i]), len(people))

    def reference(i: int) -> bytes:
        person = people[i]
        url = unsubscribe_url(config, person.token)
        message = EmailMessage()
        message["From"] = formataddr((config.sender_name, config.sender_address))
        message["To"] = formataddr((person.name, person.email))
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(__import__("datetime").datetime.now().astimezone())
        message["Message-ID"] = make_msgid(domain="example.nl")
        message["List-Unsubscribe"] = f"<{url}>, <mailto:unsubscribe@example.nl?subject={person.token}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text = rendered.text.replace("{nl:name}", person.name).replace("{nl:unsubscribe_url}", url)
        html = rendered.html.replace("{nl:name}", person.name).replace("{nl:unsubscribe_url}", url)
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        return message.as_bytes(policy=SMTP)

    email_message = timed(reference, 200, repeat=3)

    # --- names that need RFC 2047 encoded-words in To (content/headers.py), same builder
    accented = [Recipient(subscriber_id=p.subscriber_id, email=p.email, name=f"Ëlise van der Meulen-Ó'Súil {i}",
                          token=p.token, language="nl") for i, p in enumerate(people)]
    cjk = [Recipient(subscriber_id=p.subscriber_id, email=p.email, name="山田 美恵", token=p.token,
                     language="nl") for p in people]
    encoded_name = timed(lambda i: builder.build(accented[i]), len(accented))
    cjk_name = timed(lambda i: builder.build(cjk[i]), len(cjk))

    pair = generate_key_pair(selector="bench", domain="example.nl", out_dir=base)
    signed_config = make_config(directory, **{"dkim.selector": "bench", "dkim.key_file": str(pair.private_key_file)})
    signed_builder = MessageBuilder(signed_config, {"nl": rendered}, campaign_key="article:bench")
    signed = timed(lambda i: signed_builder.build(people[i]), 50, repeat=3)

    size = len(builder.build(people[0]))
    print(f"article: {len(rendered.html.encode()) / 1024:.1f} KB HTML, {size / 1024:.1f} KB message")
    print(f"render + inline one campaign:   {full * 1e3:8.2f} ms   (Jinja2 alone {jinja_only * 1e3:.2f} ms; "
          f"premailer is {full / jinja_only:.0f}x that)")
    print(f"build per recipient, no DKIM:   {ours * 1e6:8.1f} µs   ({1 / ours:,.0f} messages/s on one core)")
    print(f"  reference EmailMessage build: {email_message * 1e6:8.1f} µs   (ours is {email_message / ours:.0f}x faster)")
    print(f"  with an accented name in To:  {encoded_name * 1e6:8.1f} µs   ({encoded_name / ours:.2f}x the ASCII name)")
    print(f"  with a CJK name in To:        {cjk_name * 1e6:8.1f} µs   ({cjk_name / ours:.2f}x the ASCII name)")
    print(f"build per recipient, DKIM:      {signed * 1e6:8.1f} µs   ({1 / signed:,.0f} messages/s on one core; "
          f"{signed / ours:.0f}x the unsigned build, RSA-2048 via OpenSSL)")


if __name__ == "__main__":
    main()

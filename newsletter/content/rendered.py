"""A rendered email (one campaign's email in one language) and its one stored form.

A campaign row keeps its rendered emails, so a resumed run rebuilds the very same bytes;
`dump_rendered` and `load_rendered` are the only code that writes and reads that JSON.
Kept apart from render.py so reading a campaign never loads Jinja2 or premailer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RenderedEmail:
    """One campaign's email in one language, inlined, with personal placeholders left in."""

    subject: str
    html: str  # premailer-inlined once per campaign; contains personal placeholders
    text: str  # plain text with the same content as the HTML, with placeholders
    language: str
    name_fallback: str = ""  # put in place of {nl:name} for a subscriber without a name


def dump_rendered(emails: Mapping[str, RenderedEmail]) -> str:
    """The stored form (JSON) of a campaign's rendered emails, by language."""
    return json.dumps({language: asdict(email) for language, email in emails.items()}, ensure_ascii=False)


def load_rendered(text: str) -> dict[str, RenderedEmail]:
    """The rendered emails, by language, from their stored form."""
    return {language: RenderedEmail(**fields) for language, fields in json.loads(text).items()}

"""The web pages: templates, their words in Dutch and English, and the headers every page sends.

Pages load nothing from elsewhere (one stylesheet of our own, no scripts, no fonts), so
the Content-Security-Policy can forbid everything else; `Referrer-Policy: no-referrer`
keeps a token in the address bar from reaching any other site.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from ..config import LANGUAGES, Config

PAGES = Path(__file__).parent / "pages"
STATIC = Path(__file__).parent / "static"

# Our own pages: no script at all, styles only from our stylesheet, forms only to us.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# An archived email: its CSS is inlined into style attributes, as in the email itself.
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": PAGE_CSP,
}

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_ask": "Do you want to stop receiving {publication} by email?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed_text": "You will receive no more emails from {publication}.",
        "confirm_title": "Confirm your subscription",
        "confirm_ask": "Press the button to confirm that you want to receive {publication} by email.",
        "confirm_button": "Confirm subscription",
        "confirmed_title": "Subscription confirmed",
        "confirmed_text": "Thank you: from now on you receive {publication} by email.",
        "preferences_title": "Your preferences",
        "preferences_intro": "Choose how often and in which language you receive {publication}.",
        "preferences_inactive": "You are not subscribed at the moment.",
        "cadence": "How often",
        "cadence_each": "Every article",
        "cadence_daily": "A daily digest",
        "cadence_weekly": "A weekly digest",
        "language": "Language",
        "language_nl": "Nederlands",
        "language_en": "English",
        "save": "Save",
        "saved": "Your preferences are saved.",
        "or_unsubscribe": "Or stop receiving these emails altogether:",
        "subscribe_title": "Subscribe to {publication}",
        "subscribe_intro": "Get our articles by email. You will receive an email to confirm your address.",
        "email": "Email address",
        "name": "Name (optional)",
        "honeypot": "Leave this field empty",
        "subscribe_button": "Subscribe",
        "subscribe_sent_title": "Check your email",
        "subscribe_sent_text": "If this address can be subscribed, we have sent it an email with a link to confirm. "
        "Nothing happens until you press that link.",
        "subscribe_invalid": "That is not an email address. Please check it and try again.",
        "too_many_title": "Too many attempts",
        "too_many_text": "Please try again later.",
        "archive_title": "Archive of {publication}",
        "archive_empty": "Nothing has been sent yet.",
        "digest": "Digest",
        "not_found_title": "Page not found",
        "not_found_text": "This link does not work (any more). Nothing has changed.",
        "back": "To the archive",
        "subscribe_link": "Subscribe",
    },
    "nl": {
        "unsubscribe_title": "Uitschrijven",
        "unsubscribe_ask": "Wil je {publication} niet meer per e-mail ontvangen?",
        "unsubscribe_button": "Uitschrijven",
        "unsubscribed_title": "Je bent uitgeschreven",
        "unsubscribed_text": "Je ontvangt geen e-mails meer van {publication}.",
        "confirm_title": "Bevestig je aanmelding",
        "confirm_ask": "Druk op de knop om te bevestigen dat je {publication} per e-mail wilt ontvangen.",
        "confirm_button": "Aanmelding bevestigen",
        "confirmed_title": "Aanmelding bevestigd",
        "confirmed_text": "Bedankt: vanaf nu ontvang je {publication} per e-mail.",
        "preferences_title": "Je voorkeuren",
        "preferences_intro": "Kies hoe vaak en in welke taal je {publication} ontvangt.",
        "preferences_inactive": "Je bent op dit moment niet aangemeld.",
        "cadence": "Hoe vaak",
        "cadence_each": "Elk artikel",
        "cadence_daily": "Een dagelijks overzicht",
        "cadence_weekly": "Een wekelijks overzicht",
        "language": "Taal",
        "language_nl": "Nederlands",
        "language_en": "English",
        "save": "Opslaan",
        "saved": "Je voorkeuren zijn opgeslagen.",
        "or_unsubscribe": "Of ontvang deze e-mails helemaal niet meer:",
        "subscribe_title": "Aanmelden voor {publication}",
        "subscribe_intro": "Ontvang onze artikelen per e-mail. Je krijgt een e-mail om je adres te bevestigen.",
        "email": "E-mailadres",
        "name": "Naam (niet verplicht)",
        "honeypot": "Laat dit veld leeg",
        "subscribe_button": "Aanmelden",
        "subscribe_sent_title": "Kijk in je mailbox",
        "subscribe_sent_text": "Als dit adres kan worden aangemeld, hebben we er een e-mail met een bevestigingslink "
        "naartoe gestuurd. Er gebeurt niets tot je op die link drukt.",
        "subscribe_invalid": "Dat is geen e-mailadres. Controleer het en probeer het opnieuw.",
        "too_many_title": "Te veel pogingen",
        "too_many_text": "Probeer het later opnieuw.",
        "archive_title": "Archief van {publication}",
        "archive_empty": "Er is nog niets verstuurd.",
        "digest": "Overzicht",
        "not_found_title": "Pagina niet gevonden",
        "not_found_text": "Deze link werkt niet (meer). Er is niets veranderd.",
        "back": "Naar het archief",
        "subscribe_link": "Aanmelden",
    },
}


def pick_language(config: Config, accept_language: str | None) -> str:
    """The first of nl and en the browser asks for (Accept-Language, by q), else the publication's."""
    choices: list[tuple[float, int, str]] = []
    for index, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    if choices:
        return min(choices)[2]
    return config.publication_language if config.publication_language in LANGUAGES else "en"


def word(config: Config, language: str, key: str) -> str:
    """One text of the pages in `language`, with the publication's name filled in."""
    words = WORDS.get(language) or WORDS["en"]
    return words[key].replace("{publication}", config.publication_name)


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PAGES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def page(
    config: Config,
    template: str,
    *,
    language: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A rendered page with the security headers; pages behind a token are never cached."""
    language = language if language in WORDS else "en"

    def t(key: str) -> str:
        return word(config, language, key)

    html = _environment().get_template(template).render(
        lang=language, t=t, publication=config.publication_name, site_url=config.publication_site_url,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store", **(headers or {})})

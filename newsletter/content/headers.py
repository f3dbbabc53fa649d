"""Header lines made from user text: the one place a Subject, From or To line is written.

Every message (article, digest, confirmation, test, preview) gets its Subject, From and To
lines from here, as ASCII text ready for the wire. Python's `policy.SMTP.fold` is not
used: it only encodes a value that needs folding, so a short non-ASCII subject came out raw
and failed with UnicodeEncodeError.

The text rule, the same for every header made from user text: a line break or control
character is refused (HeaderValueError: it would start a header of its own); whitespace at
either end is trimmed and every inner run of whitespace (no-break spaces included) becomes
one space, as the article parser already does to a title. Everything else is carried
exactly: `header_text(value)` is what a reader's mail program shows.

How it is written:
- ASCII text without `=?` or `?=` goes as it is, folded at spaces to 78 characters a
  line (a Subject with a word too long for that is encoded instead; a display name keeps
  such a word whole, on a line of at most 998).
- Anything else becomes RFC 2047 encoded-words (UTF-8; Q or B, whichever is shorter).
  Subject: the whole text, in words of at most 75 characters, one per line.
  A display name: an ASCII name stays as it is (a quoted-string when it holds a special
  such as `.` or `,`); in any other name the plain words (atoms) stay as they are and each
  run of the other words becomes encoded-words.
  RFC 2047 decoders ignore the space between two adjacent encoded-words, while Python up
  to 3.13 keeps it in a display name (CPython gh-128110), so a run is one encoded-word
  whenever it fits in 75 characters: then every reader, Python included, gets the name
  exactly. Only a run too long for one word (some 20 Cyrillic or 15 CJK characters without
  an ASCII word between) is split; RFC 2047 readers still get it exactly, Python's parser
  sees a space at each split.
- Literal `=?...?=` in a title or name is encoded too, so no reader decodes it as a word.

List-* headers never come from here: they must hold no encoded-word (see message.py).
"""

from __future__ import annotations

import base64
import re

import idna

from ..errors import HeaderValueError
from ..text import forbidden_char, is_line_break

MAX_LINE = 998  # RFC 5322, without the CRLF
FOLD_AT = 78  # RFC 5322's "SHOULD"
MAX_WORD = 75  # RFC 2047: an encoded-word is at most 75 characters

_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")  # lone halves cannot be written as UTF-8
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,200}")
_DOMAIN_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ATEXT_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
# RFC 2047 5(3): the characters a Q-encoded word may carry as they are, even in a phrase.
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_EW_OVERHEAD = len("=?utf-8?q??=")


def check_header_value(value: str, *, what: str) -> str:
    """Refuse CR, LF and other control characters: no value may start a header of its own."""
    if not isinstance(value, str):
        raise HeaderValueError(f"{what} must be text, not {type(value).__name__}")
    # text.py's one rule for one line of text; lone surrogates as well, for UTF-8.
    found = forbidden_char(value) or next(iter(_SURROGATE_RE.findall(value)), None)
    if found:
        kind = "a line break" if is_line_break(found) else "a control character"
        raise HeaderValueError(
            f"{what} contains {kind} (U+{ord(found):04X}): {value!r}; a header is one line of text"
        )
    return value


def header_text(value: str, *, what: str) -> str:
    """The text a header made from `value` carries (see the module docstring for the rule)."""
    return " ".join(check_header_value(value, what=what).split())


def check_token(token: str, *, what: str) -> str:
    """A subscriber token as it goes into List-Unsubscribe: URL-safe base64, nothing else."""
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise HeaderValueError(f"{what}: malformed token {token!r}")
    return token


def ascii_domain(domain: str) -> str:
    """A domain as it may appear in a header or an envelope: IDNA-encoded, checked.

    IDNA 2008 with the UTS 46 mapping, as email-validator normalises stored addresses
    (Python's "idna" codec is IDNA 2003, which turns straße.de into strasse.de: another
    domain). The envelope recipient and the To header therefore name the same domain.
    """
    check_header_value(domain, what="domain")
    name = domain.strip().rstrip(".")
    try:
        ascii_name = name if name.isascii() else idna.encode(name, uts46=True).decode("ascii")
    except (UnicodeError, idna.IDNAError):
        raise HeaderValueError(f"{domain!r} is not a valid domain name") from None
    if not _DOMAIN_RE.fullmatch(ascii_name):
        raise HeaderValueError(f"{domain!r} is not a valid domain name")
    return ascii_name.lower()


def ascii_address(address: str) -> str:
    """An address as it may appear in a header: ASCII local part, IDNA domain."""
    check_header_value(address, what="email address")
    local, at, domain = address.strip().rpartition("@")
    if not at or not _LOCAL_RE.fullmatch(local):
        raise HeaderValueError(
            f"{address!r} cannot be used as a recipient: only plain ASCII addresses "
            "(name@domain) are supported, without quotes or spaces"
        )
    return f"{local}@{ascii_domain(domain)}"


def unstructured_header(name: str, value: str, *, what: str) -> str:
    """`Name: value` and its CRLF, for a header of free text (Subject)."""
    text = header_text(value, what=what)
    prefix = f"{name}: "
    if _is_plain(text):
        lines = _fold(prefix, text.split(" "))
        if max(len(line) for line in lines) <= FOLD_AT:
            return "\r\n".join(lines) + "\r\n"
        # A word too long for a line: encoded-words can be split anywhere.
    words = _split_words(text, first=FOLD_AT - len(prefix))
    return prefix + "\r\n ".join(words) + "\r\n"


def address_header(name: str, display_name: str, address: str) -> str:
    """`From: Name <address>` (or To) and its CRLF: the name quoted or encoded as needed."""
    text = header_text(display_name, what=f"the {name} name")
    address = ascii_address(address)
    prefix = f"{name}: "
    if not text:
        return f"{prefix}{address}\r\n"
    if _is_plain(text) and all(_ATEXT_RE.fullmatch(word) for word in text.split(" ")):
        words = text.split(" ")
    elif _is_plain(text):
        # A quoted-string; a space inside it may still be a folding point (RFC 5322 FWS).
        words = ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"').split(" ")
    else:
        words = _phrase_words(text, first=FOLD_AT - len(prefix))
    lines = _fold(prefix, [*words, f"<{address}>"])
    if max(len(line) for line in lines) > MAX_LINE:
        raise HeaderValueError(f"the {name} name is too long for a header line: {text[:60]!r}...")
    return "\r\n".join(lines) + "\r\n"


def _phrase_words(text: str, *, first: int) -> list[str]:
    """A non-ASCII display name as phrase words: each run of words that are not plain atoms
    becomes encoded-words, the plain atoms between runs stay as they are, so two encoded-words
    are only adjacent where a run is too long for one (see the module docstring)."""
    words: list[str] = []
    run: list[str] = []
    for word in [*text.split(" "), ""]:
        if word and not (_ATEXT_RE.fullmatch(word) and _is_plain(word)):
            run.append(word)
            continue
        if run:
            room = first if not words else MAX_WORD
            words.extend(_split_words(" ".join(run), first=room))
            run = []
        if word:
            words.append(word)
    return words


def _is_plain(text: str) -> bool:
    # Control characters are refused before this, so ASCII here means printable ASCII.
    return text.isascii() and "=?" not in text and "?=" not in text


def _fold(prefix: str, words: list[str]) -> list[str]:
    """Lines of at most FOLD_AT where the words allow; a fold replaces a single space, so
    unfolding (removing each CRLF) gives back exactly the words joined by spaces."""
    lines = [prefix + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= FOLD_AT:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return lines


def _q_cost(char: str, size: int) -> int:
    return 1 if char in _Q_SAFE or char == " " else 3 * size


def _encoded_word(text: str) -> str:
    """One UTF-8 encoded-word of text: Q-encoded (readable for mostly Latin text) or
    B-encoded (shorter for CJK, emoji), whichever is shorter."""
    data = text.encode("utf-8")
    q = "".join(
        "_" if char == " " else char if char in _Q_SAFE else "".join(f"={byte:02X}" for byte in char.encode("utf-8"))
        for char in text
    )
    b = base64.b64encode(data).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="


def _split_words(text: str, *, first: int) -> list[str]:
    """Encoded-words of at most MAX_WORD characters (the first at most `first`), each a whole
    number of characters, so each decodes on its own (RFC 2047 section 5). A word ends
    after a space where there is one, so a reader that wrongly keeps the space between two
    encoded-words (see the module docstring) shows a double space, not a broken word."""
    words: list[str] = []
    start, room = 0, min(first, MAX_WORD)
    q_len = size = 0
    for index, char in enumerate(text):
        char_size = len(char.encode("utf-8"))
        cost = _q_cost(char, char_size)
        if index > start and _EW_OVERHEAD + min(q_len + cost, 4 * -(-(size + char_size) // 3)) > room:
            space = text.rfind(" ", start, index)
            cut = space + 1 if space >= start and space + 1 < index else index
            words.append(_encoded_word(text[start:cut]))
            start, room = cut, MAX_WORD
            rest = text[cut:index]
            q_len = sum(_q_cost(c, len(c.encode("utf-8"))) for c in rest)
            size = len(rest.encode("utf-8"))
        q_len, size = q_len + cost, size + char_size
    words.append(_encoded_word(text[start:]))
    return words

"""DKIM: sign the exact message bytes (RFC 6376), and make the key pair to publish.

Signing is relaxed/relaxed rsa-sha256, written here over OpenSSL's RSA (the `cryptography`
package): dkimpy's own signer does the RSA step in pure Python, about 9 ms a message, which
would cap a sender at about 110 messages a second per core; this one takes well under 1 ms.
dkimpy remains the judge: the tests verify every kind of message we sign with dkim.verify.

The private key is read once per MessageBuilder (load_signer) and never printed or stored in
the database; `newsletter dkim keygen` writes it with 0600 permissions and prints the DNS
TXT record that receivers use to verify the signature.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import NewsletterError

if TYPE_CHECKING:  # a signer process (delivery/signer_worker.py) never loads the settings
    from ..config import Config

KEY_BITS = 2048
MIN_KEY_BITS = 1024  # receivers ignore shorter RSA keys (RFC 8301)
# Runs of blanks that canonicalisation changes: a tab, or two or more (a lone space stays a
# space, and matching every one of them made the regex the slowest part of signing).
_WSP_RUN = re.compile(rb"\t[ \t]*| [ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


class DkimError(NewsletterError):
    """The DKIM key cannot be read, made or used."""


class DkimSigner:
    """Signs messages for one selector and domain with a key loaded once.

    relaxed/relaxed canonicalisation: it survives a relay that re-folds headers or strips
    trailing whitespace, which simple canonicalisation does not.
    """

    def __init__(self, *, selector: str, domain: str, private_key_pem: bytes, checked: bool = False) -> None:
        """`checked`: the key comes from a DkimSigner that loaded it already (see
        __reduce__), so OpenSSL's check of the RSA key (about 40 ms, most of a signer
        process's start) is not done again."""
        self.selector = selector
        self.domain = domain
        try:
            key = serialization.load_pem_private_key(
                private_key_pem, password=None, unsafe_skip_rsa_key_validation=checked
            )
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise DkimError(f"the DKIM key is not an unencrypted private key in PEM form: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimError("the DKIM key is not an RSA key (make one with `newsletter dkim keygen`)")
        if key.key_size < MIN_KEY_BITS:
            raise DkimError(
                f"the DKIM key has {key.key_size} bits; receivers need at least "
                f"{MIN_KEY_BITS} (make a new one with `newsletter dkim keygen`)"
            )
        self._key = key

    def __reduce__(self) -> tuple[Callable[[str, str, bytes], DkimSigner], tuple[str, str, bytes]]:
        # Pickled only to reach the process that signs for us (delivery/signing.py), over
        # a pipe between our own processes: the key is never written anywhere.
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return (_restore_signer, (self.selector, self.domain, pem))

    @property
    def key_bits(self) -> int:
        return self._key.key_size

    def record_value(self) -> str:
        """The DNS TXT record that publishes this key's public half (v=DKIM1; k=rsa; p=...)."""
        return _record_value(self._key.public_key())

    def sign(self, message: bytes, *, include_headers: Sequence[str], now: int | None = None) -> bytes:
        """The DKIM-Signature header (CRLF-terminated, folded) to put before `message`.

        `message` has CRLF line ends, as MessageBuilder makes it. Headers listed but absent
        are left out of h=.
        """
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            raise DkimError("cannot DKIM-sign a message without a blank line after its headers")
        return self.sign_head(head, body_hash=body_hash([_relaxed_body(body)]), include_headers=include_headers, now=now)

    def sign_head(
        self, head: bytes, *, body_hash: str, include_headers: Sequence[str], now: int | None = None
    ) -> bytes:
        """sign() for a message given as its header block (no final blank line) and bh=.

        The body hash is the costly part after RSA; MessageBuilder works it out from the
        canonical pieces it prepared per campaign (see body_hash), and a signer process
        then needs only the headers.
        """
        signed, names = _signed_fields(head, include_headers)
        stamp = int(time.time()) if now is None else now
        tags = (
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain}; s={self.selector};\r\n"
            f" t={stamp}; h={':'.join(names)};\r\n bh={body_hash};\r\n b="
        )
        header = b"DKIM-Signature: " + tags.encode("ascii")
        # Our own tags, folded before single spaces: unfolded, their relaxed form (unless
        # a caller gave a selector or domain with blanks, which load_signer refuses).
        own = b"dkim-signature:" + tags.replace("\r\n ", " ").encode("ascii")
        if b"  " in own or b"\t" in own:
            own = _relaxed_header(header + b"\r\n").removesuffix(b"\r\n")
        to_sign = b"".join(signed) + own
        signature = base64.b64encode(self._key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256()))
        folded = b"\r\n ".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        return header + folded + b"\r\n"


def body_hash(canonical: Sequence[bytes]) -> str:
    """bh= of a body given as pieces already canonicalised, each ending in a line break.

    Relaxed canonicalisation works line by line, so pieces that end at line breaks can be
    canonicalised apart (relaxed_lines) and once per campaign for the pieces every message
    shares; only the empty lines at the very end of the body need the whole.
    """
    digest = hashlib.sha256()
    pieces = list(canonical)
    while pieces and not pieces[-1]:
        pieces.pop()
    if pieces and (
        pieces[-1] == b"\r\n" or pieces[-1].endswith(b"\r\n\r\n")
        or not all(piece.endswith(b"\r\n") for piece in pieces)
    ):
        # Empty lines at the end, maybe across pieces, or a piece that stops mid-line
        # (neither happens in MessageBuilder's bodies): the whole body decides.
        pieces = [_relaxed_body(b"".join(pieces))]
    for piece in pieces:
        digest.update(piece)
    return base64.b64encode(digest.digest()).decode("ascii")


def _restore_signer(selector: str, domain: str, pem: bytes) -> DkimSigner:
    return DkimSigner(selector=selector, domain=domain, private_key_pem=pem, checked=True)


def _signed_fields(head: bytes, include_headers: Sequence[str]) -> tuple[list[bytes], list[str]]:
    """The relaxed form (RFC 6376 3.4.2, with its CRLF) of each header in `include_headers`
    that `head` has, and their lower-case names for h=.

    RFC 6376 5.4.2: with one instance each, the last one present is signed. Bytes
    operations on the whole block (unfold, blanks to single spaces), then a split, not a
    regex per field: in a signer process this was the largest cost after RSA. A block
    where that could differ (an empty line, a first line that is a fold, a field without
    a colon or with blanks or control characters around its name) goes through
    _header_fields and _relaxed_header, which say what the result must be.
    """
    if head[:1] in (b"", b" ", b"\t", b"\r") or b"\r\n\r\n" in head or head.endswith(b"\r\n"):
        return _signed_fields_slowly(head, include_headers)
    text = head
    if b"\r\n " in text:
        text = text.replace(b"\r\n ", b" ")
    if b"\r\n\t" in text:
        text = text.replace(b"\r\n\t", b"\t")
    text = _single_spaces(text)
    # Later instances replace earlier ones: the last one present is the one signed.
    lines = {line.partition(b":")[0].strip().lower(): line for line in text.split(b"\r\n")}
    if any(b" " in key for key in lines):  # a fold before a colon: the name is its first line's
        return _signed_fields_slowly(head, include_headers)
    signed: list[bytes] = []
    names: list[str] = []
    for name in include_headers:
        wanted = name.lower().encode("ascii")
        line = lines.get(wanted)
        if line is None:
            continue
        field_name, colon, value = line.partition(b":")
        if not colon or field_name.lower() != wanted:
            return _signed_fields_slowly(head, include_headers)
        signed.append(wanted + b":" + value.strip(b" ") + b"\r\n")
        names.append(name.lower())
    return signed, names


def _signed_fields_slowly(head: bytes, include_headers: Sequence[str]) -> tuple[list[bytes], list[str]]:
    """_signed_fields for any header block, as RFC 6376 3.4.2 words it (regexes per field)."""
    fields = _header_fields(head + b"\r\n")
    signed: list[bytes] = []
    names: list[str] = []
    for name in include_headers:
        wanted = name.lower().encode("ascii")
        for field_name, raw in reversed(fields):
            if field_name == wanted:
                signed.append(_relaxed_header(raw))
                names.append(name.lower())
                break
    return signed, names


def _header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, raw field with its CRLF and folds) for each header field."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
        else:
            fields.append((line.split(b":", 1)[0].strip().lower(), line + b"\r\n"))
    return fields


def _relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfolded, runs of blanks as one space, trimmed."""
    name, _, value = raw.partition(b":")
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value.removesuffix(b"\r\n"))).strip(b" \t")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def relaxed_lines(text: bytes) -> bytes:
    """RFC 6376 3.4.4 on whole lines: runs of blanks as one space, none at line ends.

    With bytes.replace, not a regex: every space of a 20 KB body is a place where a regex
    must try a match, which made it cost more than the RSA signature. Tabs become spaces,
    runs of spaces one (_single_spaces), and the one space that may then remain before a
    line break goes.
    """
    text = _single_spaces(text)
    if b" \r\n" in text:
        text = text.replace(b" \r\n", b"\r\n")
    return text


def _single_spaces(text: bytes) -> bytes:
    """Tabs as spaces, and each run of spaces as one (RFC 6376's runs of WSP), by halving
    doubled spaces until none is left (a run of n takes log2(n) passes)."""
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    while b"  " in text:
        text = text.replace(b"  ", b" ")
    return text


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of blanks as one space, none at line ends, no trailing empty lines."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = relaxed_lines(body)
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return b"" if body == b"\r\n" else body


def signing_domain(config: Config) -> str:
    """dkim.domain, or the From address's domain (which DMARC alignment wants anyway).

    An internationalised domain is given in its xn-- form, as it appears in d= and in DNS.
    """
    domain = (config.dkim_domain or config.sender_address.rpartition("@")[2]).strip().lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain  # _check_dns_name says what is wrong with it


def _check_dns_name(value: str, *, what: str) -> str:
    """A selector or domain fit for a DKIM tag and a DNS name: nothing that ends the tag."""
    if not value or not all(c.isascii() and (c.isalnum() or c in "-.") for c in value):
        raise DkimError(f"the DKIM {what} must be letters, digits, dots and hyphens, not {value!r}")
    return value


def load_signer(config: Config) -> DkimSigner | None:
    """The signer the configuration asks for, or None when DKIM is not configured."""
    if not config.dkim_selector or config.dkim_key_file is None:
        return None
    try:
        pem = config.dkim_key_file.read_bytes()
    except OSError as exc:
        raise DkimError(
            f"dkim.key_file: cannot read {config.dkim_key_file}: {exc.strerror}"
        ) from exc
    selector = _check_dns_name(config.dkim_selector.strip(), what="selector (dkim.selector)")
    domain = _check_dns_name(signing_domain(config), what="domain (dkim.domain)")
    try:
        return DkimSigner(
            selector=selector,
            domain=domain,
            private_key_pem=pem,
        )
    except DkimError as exc:
        raise DkimError(f"dkim.key_file {config.dkim_key_file}: {exc}") from exc


@dataclass(frozen=True)
class KeyPair:
    """A new DKIM key: where the private key went and the DNS record to publish."""

    private_key_file: Path
    selector: str
    domain: str
    record_name: str  # selector._domainkey.domain
    record_value: str  # v=DKIM1; k=rsa; p=...

    def zone_line(self) -> str:
        """The record as a zone-file line: TXT strings are at most 255 characters each."""
        value = self.record_value
        chunks = " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))
        return f"{self.record_name}. IN TXT ( {chunks} )"


def generate_key_pair(*, selector: str, domain: str, out_dir: Path, bits: int = KEY_BITS) -> KeyPair:
    """Write a new RSA private key (mode 0600, never overwriting) and return its DNS record."""
    _check_dns_name(selector, what="selector")
    _check_dns_name(domain, what="domain")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, what dkimpy reads
        serialization.NoEncryption(),
    )
    path = out_dir / f"{selector}.{domain}.private.pem"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DkimError(f"cannot create the folder {out_dir}: {exc.strerror}") from exc
    try:
        # O_EXCL: never replace a key that may already be published; 0600 from the start,
        # so the key is never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DkimError(f"{path} already exists; choose another --selector or --out, or remove it") from None
    except OSError as exc:
        raise DkimError(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    return KeyPair(
        private_key_file=path,
        selector=selector,
        domain=domain,
        record_name=f"{selector}._domainkey.{domain}",
        record_value=_record_value(key.public_key()),
    )


def _record_value(public_key: rsa.RSAPublicKey) -> str:
    public_der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode("ascii")

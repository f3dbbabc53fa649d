"""DKIM: sign the exact message bytes with dkimpy, and make the key pair to publish.

The private key is read once per MessageBuilder (load_signer) and never printed or stored in
the database; `newsletter dkim keygen` writes it with 0600 permissions and prints the DNS
TXT record that receivers use to verify the signature.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.crypto import parse_pem_private_key

from .config import Config
from .errors import NewsletterError

KEY_BITS = 2048
MIN_KEY_BITS = 1024  # receivers ignore shorter RSA keys (RFC 8301)
# relaxed body canonicalisation survives a relay that re-wraps trailing whitespace
CANONICALIZE = (b"relaxed", b"relaxed")


class DkimError(NewsletterError):
    """The DKIM key cannot be read, made or used."""


class DkimSigner:
    """Signs messages for one selector and domain with a key loaded once."""

    def __init__(self, *, selector: str, domain: str, private_key_pem: bytes) -> None:
        self.selector = selector
        self.domain = domain
        self._key = private_key_pem
        try:
            modulus = parse_pem_private_key(private_key_pem)["modulus"]
        except Exception as exc:  # dkimpy's ASN.1 parser raises several kinds
            raise DkimError(f"the DKIM key is not an RSA private key in PEM form: {exc}") from exc
        if modulus.bit_length() < MIN_KEY_BITS:
            raise DkimError(
                f"the DKIM key has {modulus.bit_length()} bits; receivers need at least "
                f"{MIN_KEY_BITS} (make a new one with `newsletter dkim keygen`)"
            )

    def sign(self, message: bytes, *, include_headers: Sequence[str]) -> bytes:
        """The DKIM-Signature header line (CRLF-terminated) to put before `message`."""
        try:
            return dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                canonicalize=CANONICALIZE,
                include_headers=[h.lower().encode("ascii") for h in include_headers],
            )
        except dkim.DKIMException as exc:
            raise DkimError(f"cannot DKIM-sign the message: {exc}") from exc


def signing_domain(config: Config) -> str:
    """dkim.domain, or the From address's domain (which DMARC alignment wants anyway)."""
    return (config.dkim_domain or config.sender_address.rpartition("@")[2]).strip().lower()


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
    try:
        return DkimSigner(
            selector=config.dkim_selector.strip(),
            domain=signing_domain(config),
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
    for what, value in (("selector", selector), ("domain", domain)):
        if not value or not all(c.isascii() and (c.isalnum() or c in "-.") for c in value):
            raise DkimError(f"the DKIM {what} must be letters, digits, dots and hyphens, not {value!r}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS#1, what dkimpy reads
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{selector}.{domain}.private.pem"
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
        record_value="v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode("ascii"),
    )

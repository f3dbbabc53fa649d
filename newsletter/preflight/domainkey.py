"""DKIM (RFC 6376): the TXT record at SELECTOR._domainkey.DOMAIN holds the public half of
the configured private key (dkim.key_file), so receivers can verify our signatures."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..config import Config
from ..content.dkim import DkimError, load_signer, signing_domain
from ..errors import LookupFailedError
from .findings import Finding, fail, ok, warn
from .resolver import Resolver

CHECK = "dkim"
KEYGEN_FIX = (
    "run `newsletter dkim keygen`, publish the TXT record it prints, then set dkim.selector "
    "and dkim.key_file in newsletter.toml"
)


def tags(record: str) -> dict[str, str]:
    """The tag=value pairs of a DKIM or DMARC record (names lower-cased, blanks dropped)."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            out.setdefault(name.strip().lower(), "".join(value.split()))
    return out


def _public_numbers(p: str) -> rsa.RSAPublicNumbers | None:
    try:
        key = serialization.load_der_public_key(base64.b64decode(p, validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        return None
    return key.public_numbers() if isinstance(key, rsa.RSAPublicKey) else None


def check_dkim(resolver: Resolver, config: Config) -> Finding:
    """The DKIM finding: not configured (warn), the key unreadable, unpublished or different (fail)."""
    if not config.dkim_selector:
        domain = signing_domain(config)
        return warn(CHECK, domain, "messages are not DKIM-signed; Gmail, Yahoo and Outlook.com want bulk mail signed",
                    KEYGEN_FIX)
    try:
        signer = load_signer(config)
    except DkimError as exc:
        return fail(CHECK, signing_domain(config), str(exc), KEYGEN_FIX)
    assert signer is not None  # a selector without a key file is refused by load_config
    name = f"{signer.selector}._domainkey.{signer.domain}"
    expected = signer.record_value()
    publish = f'publish TXT {name} "{expected}"'
    try:
        records = resolver.txt(name).records
    except LookupFailedError as exc:
        return warn(CHECK, name, f"cannot check the DKIM key at {name}: {exc}",
                    "run `newsletter check` again, or set check.nameservers to a resolver that answers")
    keys = [tags(r) for r in records if "p" in tags(r)]
    if not keys:
        return fail(CHECK, name, f"no DKIM key is published at {name}, so receivers cannot verify the signature",
                    publish)
    if len(keys) > 1:
        return fail(CHECK, name, f"{name} has {len(keys)} DKIM records; receivers may pick either",
                    f"keep only the one record: {publish.removeprefix('publish ')}")
    published = keys[0]
    if published.get("k", "rsa").lower() != "rsa":
        return fail(CHECK, name, f"the key at {name} is k={published['k']}, but dkim.key_file is an RSA key", publish)
    if not published["p"]:
        return fail(CHECK, name, f"the key at {name} is revoked (empty p=)", publish)
    ours = _public_numbers(tags(expected)["p"])
    if _public_numbers(published["p"]) != ours:
        return fail(CHECK, name, f"the key published at {name} is not the public half of dkim.key_file "
                    f"({config.dkim_key_file}); receivers will reject the signature",
                    f"replace the record with: TXT {name} \"{expected}\"")
    return ok(CHECK, name, f"{name} publishes the public key of dkim.key_file ({signer.key_bits}-bit RSA)")


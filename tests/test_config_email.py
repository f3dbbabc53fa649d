"""sender.address is checked without email-validator when the address is plain (so loading
the settings stays light): such an address is exactly one email-validator accepts and leaves
unchanged; every other address still goes through email-validator."""

from __future__ import annotations

import random
from pathlib import Path

import email_validator
import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.config import SPECIAL_USE_TLDS, is_plain_email, load_config
from newsletter.errors import ConfigError
from newsletter.scaffold import init_directory

EDGES = [
    "nieuws@example.nl", "a.b+c_d-e@sub.example.co.uk", "x@a-b.example.org", "1@2.example.com",
    "Nieuws@example.nl", "nieuws@Example.NL", "info@example.nl", "INFO@example.nl",
    "a..b@example.nl", ".a@example.nl", "a.@example.nl", "a@example..nl", "a@.example.nl", "a@example.nl.",
    "a@-example.nl", "a@example-.nl", "a@ab--cd.example", "a@xn--bcher-kva.example", "a@xn--nxasmq6b.com",
    "a@example", "a@example.c", "a@example.123", "a@example.n1", "a@localhost", "a@host.localhost",
    "a@b.test", "a@b.invalid", "a@b.local", "a@b.onion", "a@1.in-addr.arpa",
    "a@" + "b" * 63 + ".nl", "a@" + "b" * 64 + ".nl", "a" * 64 + "@example.nl", "a" * 65 + "@example.nl",
    "a@" + ".".join(["b" * 60] * 4) + ".nl", "a" * 60 + "@" + ".".join(["b" * 60] * 3) + ".nl",
    "a b@example.nl", "a@b@example.nl", "<a@example.nl>", "Ann <a@example.nl>", '"a"@example.nl',
    "é@example.nl", "a@bücher.example", "a@[127.0.0.1]", "", "@example.nl", "a@",
]


def _validator(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def _random_addresses(count: int) -> list[str]:
    """Near-plain addresses: dots, hyphens, digits and xn in odd places, some upper case."""
    rng = random.Random(13)
    found = []
    for _ in range(count):
        local = "".join(rng.choice("abcXyz019.-_+") for _ in range(rng.randint(1, 8)))
        labels = ["".join(rng.choice("abxn019-") for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 3))]
        tld = "".join(rng.choice("abcdefgxnT1-") for _ in range(rng.randint(1, 4)))
        found.append(local + "@" + ".".join([*labels, tld]))
    return found


@pytest.mark.parametrize("address", EDGES)
def test_a_plain_address_is_one_email_validator_accepts_unchanged(address: str) -> None:
    if is_plain_email(address):
        assert _validator(address) == address


def test_random_plain_addresses_are_ones_email_validator_accepts_unchanged() -> None:
    plain = [a for a in _random_addresses(20000) if is_plain_email(a)]
    assert len(plain) > 1000  # the sample reaches the plain check's edges
    assert [a for a in plain if _validator(a) != a] == []


def test_the_plain_check_covers_the_common_addresses_and_email_validators_special_domains() -> None:
    assert all(is_plain_email(a) for a in ("nieuws@example.nl", "newsletter@example.org", "a.b+c@sub.example.co.uk"))
    assert set(email_validator.SPECIAL_USE_DOMAIN_NAMES) <= set(SPECIAL_USE_TLDS)


def _config_with(tmp_path: Path, address: str) -> str:
    directory = tmp_path / "site"
    init_directory(directory)
    config = directory / "newsletter.toml"
    return load_config(config, environ={"NEWSLETTER_SENDER_ADDRESS": address}).sender_address


def test_an_address_that_is_not_plain_is_still_normalised_or_refused_by_email_validator(tmp_path: Path) -> None:
    assert _config_with(tmp_path, "Info@Example.NL") == "info@example.nl"
    with pytest.raises(ConfigError, match="sender.address .* is not an email address"):
        _config_with(tmp_path, "nieuws@example..nl")

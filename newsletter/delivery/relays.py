"""The relays a campaign goes through: parsing smtp.url(s), weights, TLS and AUTH on connect.

One configured relay or several shared by weight (smooth weighted round robin over new
connections, skipping a relay for a while after it refused a connection). Connection
problems are sorted into the ones worth retrying (RelayUnavailable) and the ones no retry
can fix (RelayConfigError: a refused login, an untrusted certificate, no STARTTLS).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiosmtplib

from ..config import Config
from ..errors import SendError

DEFAULT_PORTS = {"smtp": 587, "smtps": 465, "smtp+plain": 25}
DOWN_FOR_S = 30.0


class RelayConfigError(SendError):
    """A relay refused us for a reason no retry fixes (login, certificate, no TLS)."""


class RelayUnavailable(SendError, ConnectionError):
    """A relay could not be reached or dropped the connection before any message.

    `busy`: it answered, with 421 (too many connections, slow down): a rate signal.
    """

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


@dataclass(frozen=True)
class Relay:
    """One SMTP relay: where, with which TLS mode, and its share of the connections."""

    host: str
    port: int
    tls: str  # starttls, implicit or none
    weight: int = 1
    username: str = ""

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def parse_relay(url: str, *, weight: int = 1, username: str = "") -> Relay:
    """A Relay from smtp://, smtps:// or smtp+plain:// (a user name in the URL wins)."""
    parts = urlsplit(url)
    tls = {"smtp": "starttls", "smtps": "implicit", "smtp+plain": "none"}[parts.scheme]
    return Relay(
        host=parts.hostname or "",
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        tls=tls,
        weight=weight,
        username=unquote(parts.username) if parts.username else username,
    )


def relays_from_config(config: Config) -> list[Relay]:
    """The configured relays, smtp.url first; empty when the capture server is to be used."""
    if not config.smtp_url:
        return []
    relays = [parse_relay(config.smtp_url, weight=config.smtp_weight, username=config.smtp_username)]
    for url, weight in config.smtp_relays:
        relays.append(parse_relay(url, weight=weight, username=config.smtp_username))
    return relays


def tls_context(config: Config) -> ssl.SSLContext:
    """The TLS context for every connection of a run, built once."""
    if not config.smtp_tls_verify:
        # The explicit opt-out, for a relay on localhost with a self-signed certificate.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = str(config.smtp_ca_file) if config.smtp_ca_file else None
    return ssl.create_default_context(cafile=cafile)


@dataclass
class RelayPicker:
    """Smooth weighted round robin over the relays, skipping ones recently unreachable."""

    relays: list[Relay]
    _current: list[int] = field(default_factory=list)
    _down_until: dict[Relay, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._current = [0] * len(self.relays)

    def pick(self) -> Relay:
        now = time.monotonic()
        candidates = [i for i, r in enumerate(self.relays) if self._down_until.get(r, 0) <= now]
        if not candidates:  # all down: try them anyway rather than stall
            candidates = list(range(len(self.relays)))
        total = sum(self.relays[i].weight for i in candidates)
        for i in candidates:
            self._current[i] += self.relays[i].weight
        best = max(candidates, key=lambda i: self._current[i])
        self._current[best] -= total
        return self.relays[best]

    def mark_down(self, relay: Relay) -> None:
        self._down_until[relay] = time.monotonic() + DOWN_FOR_S


def ssl_error_of(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `exc` (aiosmtplib wraps it in its own exceptions), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def connect(
    relay: Relay,
    *,
    context: ssl.SSLContext | None,
    password: str | None,
    timeout: float,
) -> aiosmtplib.SMTP:
    """An open, greeted (and if configured, TLS-protected and logged-in) connection."""
    if relay.tls != "none" and context is None:
        context = ssl.create_default_context()  # slow (reads the CA store): built once per run
    client = aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        timeout=timeout,
        use_tls=relay.tls == "implicit",
        start_tls=relay.tls == "starttls",
        tls_context=context,
    )
    try:
        await client.connect()
        if client.last_ehlo_response is None:
            # Greet now rather than inside the first sendmail, so the relay's extensions
            # are known before the first message.
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        if relay.username:
            await client.login(relay.username, password or "")
    except aiosmtplib.SMTPAuthenticationError as exc:
        client.close()
        raise RelayConfigError(
            f"{relay.label} refused the login of {relay.username!r}: {exc.code} {exc.message}. "
            "Check smtp.username and NEWSLETTER_SMTP_PASSWORD (or smtp.password_file)."
        ) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        client.close()
        raise RelayConfigError(
            f"{relay.label}: {exc}. Use smtps:// for implicit TLS, or smtp+plain:// only for "
            "a relay on this machine."
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        client.close()
        ssl_error = ssl_error_of(exc)
        if ssl_error is not None and isinstance(ssl_error, ssl.SSLCertVerificationError):
            raise RelayConfigError(
                f"{relay.label}: the TLS certificate is not trusted "
                f"({ssl_error.verify_message or ssl_error}). Set smtp.ca_file to the CA that "
                "signed it, or smtp.tls_verify = false for a relay on this machine."
            ) from exc
        busy = isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421
        raise RelayUnavailable(f"cannot connect to {relay.label}: {exc}", busy=busy) from exc
    return client


async def close_politely(client: aiosmtplib.SMTP) -> None:
    """QUIT (briefly), or just drop the connection when the relay does not answer."""
    try:
        await client.quit(timeout=2)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()

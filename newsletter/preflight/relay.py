"""Each configured relay, tried without sending: greeting, EHLO extensions, TLS and its
certificate, and the login when smtp.username is set. The session ends with QUIT before
any MAIL FROM."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime

import aiosmtplib

from ..config import Config
from ..delivery.relays import Relay, relays_from_config, ssl_error_of, tls_context
from ..errors import ConfigError
from .findings import Finding, fail, ok, warn

CHECK = "relay"
EXTENSIONS = ("starttls", "size", "8bitmime", "pipelining")
CERT_WARN_DAYS = 14
UNTRUSTED_FIX = ("set smtp.ca_file to the PEM file of the CA that signed the relay's certificate "
                 "(or smtp.tls_verify = false only for a relay on this machine)")


def is_local(host: str) -> bool:
    """A relay on this machine, where plain SMTP and unverified TLS are no risk."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def check_relays(config: Config) -> list[Finding]:
    """Findings for every configured relay, tried one after the other."""
    relays = relays_from_config(config)
    if not relays:
        return [warn(CHECK, "smtp.url", "no relay is configured: messages go to the built-in capture server "
                     "(outbox/) and nothing leaves this machine", "set smtp.url to your relay, e.g. "
                     "smtp://smtp.example.nl:587")]
    try:
        password = config.smtp_password()
    except ConfigError as exc:
        password, password_error = None, str(exc)
    else:
        password_error = ""
    context = tls_context(config)
    findings: list[Finding] = []
    for relay in relays:
        findings += await check_relay(relay, config=config, context=context, password=password,
                                      password_error=password_error)
    return findings


def _tls_failure(relay: Relay, exc: BaseException) -> Finding | None:
    cause = ssl_error_of(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return fail(CHECK, relay.label, f"the TLS certificate of {relay.label} is not trusted "
                    f"({cause.verify_message or cause})", UNTRUSTED_FIX)
    if cause is not None:
        return fail(CHECK, relay.label, f"TLS with {relay.label} failed: {cause}",
                    "check the scheme of smtp.url: smtp:// for STARTTLS (587), smtps:// for TLS (465)")
    return None


async def check_relay(relay: Relay, *, config: Config, context: ssl.SSLContext, password: str | None,
                      password_error: str = "") -> list[Finding]:
    """Greeting, TLS, extensions and (when configured) AUTH of one relay."""
    client = aiosmtplib.SMTP(hostname=relay.host, port=relay.port, timeout=config.smtp_timeout,
                             use_tls=relay.tls == "implicit", start_tls=False, tls_context=context)
    label = relay.label
    findings: list[Finding] = []
    try:
        try:
            greeting = await client.connect()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            failure = _tls_failure(relay, exc)
            return [failure or fail(CHECK, label, f"cannot connect to {label}: {exc}",
                                    "check the host and port in smtp.url (or smtp.relays) and that the relay runs")]
        findings.append(ok(CHECK, label, f"{label} greets: {greeting.code} {greeting.message.splitlines()[0]}"))
        try:
            await client.ehlo()
            if relay.tls == "starttls":
                if not client.supports_extension("starttls"):
                    findings.append(fail(CHECK, label, f"{label} does not offer STARTTLS, so smtp:// cannot protect "
                                         "the connection", "use smtps:// if the relay takes TLS on another port, or "
                                         "smtp+plain:// only for a relay on this machine"))
                    return findings
                await client.starttls()
                await client.ehlo()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            failure = _tls_failure(relay, exc)
            findings.append(failure or fail(CHECK, label, f"{label} broke off after the greeting: {exc}",
                                            "check the relay's log"))
            return findings
        findings.append(_tls_finding(relay, client, verified=context.verify_mode != ssl.CERT_NONE))
        findings.append(_extensions_finding(relay, client))
        if relay.username:
            findings.append(await _auth_finding(relay, client, password, password_error))
        try:
            await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            pass
        return findings
    finally:
        client.close()


def _tls_finding(relay: Relay, client: aiosmtplib.SMTP, *, verified: bool) -> Finding:
    label = relay.label
    if relay.tls == "none":
        if is_local(relay.host):
            return ok(CHECK, label, f"no TLS to {label}: a relay on this machine")
        return warn(CHECK, label, f"no TLS to {label} (smtp+plain://): mail and password cross the network "
                    "readable", "use smtp:// (STARTTLS) or smtps:// in smtp.url")
    tls = client.get_transport_info("ssl_object")
    version = tls.version() if isinstance(tls, ssl.SSLObject) else "TLS"
    how = "STARTTLS" if relay.tls == "starttls" else "TLS"
    if not verified:
        message = f"{version} ({how}) to {label}, certificate not verified (smtp.tls_verify = false)"
        if is_local(relay.host):
            return ok(CHECK, label, message)
        return warn(CHECK, label, message, "set smtp.ca_file to the CA that signed the certificate and "
                    "smtp.tls_verify = true")
    cert = tls.getpeercert() if isinstance(tls, ssl.SSLObject) else None
    until = ssl.cert_time_to_seconds(str(cert["notAfter"])) if cert and "notAfter" in cert else None
    if until is None:
        return ok(CHECK, label, f"{version} ({how}) to {label}, certificate trusted")
    expires = datetime.fromtimestamp(until, UTC)
    days = (expires - datetime.now(UTC)).days
    message = f"{version} ({how}) to {label}, certificate trusted until {expires:%Y-%m-%d}"
    if days < CERT_WARN_DAYS:
        return warn(CHECK, label, f"{message}: it expires in {days} days", "have the relay's certificate renewed")
    return ok(CHECK, label, message)


def _extensions_finding(relay: Relay, client: aiosmtplib.SMTP) -> Finding:
    offered = client.esmtp_extensions
    parts = []
    for name in EXTENSIONS[1:] + ("auth",):
        if name in offered:
            value = offered[name].strip()
            parts.append(f"{name.upper()} {value}".strip())
    missing = [n.upper() for n in EXTENSIONS[1:] if n not in offered]
    message = f"{relay.label} offers {', '.join(parts) or 'no extensions'}"
    if missing:
        message += f"; not {', '.join(missing)} (not needed: messages are quoted-printable, one at a time)"
    return ok(CHECK, relay.label, message)


async def _auth_finding(relay: Relay, client: aiosmtplib.SMTP, password: str | None, password_error: str) -> Finding:
    label, user = relay.label, relay.username
    fix = "check smtp.username and NEWSLETTER_SMTP_PASSWORD (or smtp.password_file)"
    if password_error:
        return fail(CHECK, label, password_error, fix)
    if password is None:
        return fail(CHECK, label, f"smtp.username is {user!r} but no password is set",
                    "set NEWSLETTER_SMTP_PASSWORD or point smtp.password_file at a file holding it")
    if not client.supports_extension("auth"):
        return fail(CHECK, label, f"{label} does not offer AUTH here, but smtp.username is set",
                    "empty smtp.username if the relay needs no login, or use TLS if it offers AUTH only over TLS")
    try:
        await client.login(user, password)
    except aiosmtplib.SMTPAuthenticationError as exc:
        return fail(CHECK, label, f"{label} refused the login of {user!r}: {exc.code} {exc.message}", fix)
    except aiosmtplib.SMTPException as exc:
        return fail(CHECK, label, f"{label} could not log in {user!r}: {exc}", fix)
    return ok(CHECK, label, f"{label} accepted the login of {user!r}")

"""Settings: newsletter.toml, NEWSLETTER_* environment variables and command-line options.

One table (SETTINGS) drives everything: the commented newsletter.toml that `init` writes,
the environment variable names, validation and the README's configuration table.
Precedence: option > NEWSLETTER_* variable > newsletter.toml > default. Values are checked
once, when the configuration is loaded, and every error names the key and where it came from.
Secrets (the SMTP password) come only from the environment or a file the config points to.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, NotInitialisedError
from .periods import parse_schedule
from .text import forbidden_char, is_line_break

CONFIG_NAME = "newsletter.toml"
ENV_PREFIX = "NEWSLETTER_"
# Variables that are not settings in the table but are read by name.
ENV_CONFIG = "NEWSLETTER_CONFIG"
ENV_PASSWORD = "NEWSLETTER_SMTP_PASSWORD"
ENV_BOUNCES_PASSWORD = "NEWSLETTER_BOUNCES_PASSWORD"
SPECIAL_ENV = {ENV_CONFIG, ENV_PASSWORD, ENV_BOUNCES_PASSWORD}
DAY = 86400
# More connections than this is a mistake (a relay refuses them long before) and would
# exhaust file descriptors; `send --concurrency` has the same bound.
MAX_CONCURRENCY = 500
LOGO_MAX_WIDTH = 536  # the 600 px container less the masthead's 32 px padding on each side


@dataclass(frozen=True)
class Setting:
    """One configurable value: its dotted key, kind, default and the help shown to users."""

    key: str
    kind: str  # a key of _CHECKERS: str, int, float, bool, email, url, https_url, smtp_url, list_id, ...
    default: Any
    help: str
    env_name: str = ""
    # The range a number must fall in (both ends included); the send-time code relies on it.
    limits: tuple[float, float] | None = None

    @property
    def env(self) -> str:
        return self.env_name or ENV_PREFIX + self.key.upper().replace(".", "_")

    @property
    def field(self) -> str:
        return self.key.replace(".", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database",
        "path",
        "subscribers.db",
        "SQLite database file, relative to this file",
        env_name="NEWSLETTER_DB",
    ),
    Setting("templates", "path", "templates", "Folder of the editable email templates"),
    Setting("publication.name", "str", "My Newsletter", "Publication name, shown in every email"),
    Setting("publication.language", "lang", "en", "Default language of the emails: nl or en"),
    Setting("publication.site_url", "url", "https://example.org", "The publication's website"),
    Setting(
        "publication.list_id",
        "list_id",
        "newsletter.example.org",
        "List-Id label (RFC 2919): a domain-like name you own",
    ),
    Setting(
        "publication.postal_address",
        "str",
        "",
        "Postal address printed in the footer (required by law in many countries)",
    ),
    Setting(
        "publication.logo_url",
        "https_url",
        "",
        "Logo in the email header instead of the name as text (an https:// image URL); empty for none",
    ),
    Setting(
        "publication.logo_width",
        "int",
        200,
        f"Width in pixels the logo is shown at, at most {LOGO_MAX_WIDTH} (the 600 px layout less its margins)",
    ),
    Setting(
        "publication.logo_height",
        "int",
        50,
        "Height in pixels the logo is shown at: with logo_width, the proportions of the image",
    ),
    Setting("publication.time_zone", "zone", "Europe/Amsterdam", "Time zone for digests and schedules"),
    Setting(
        "publication.feedback_id",
        "feedback_id",
        "",
        "Feedback-ID header value (a:b:c:SenderId), empty for none",
    ),
    Setting(
        "schedule.daily",
        "daily_time",
        "07:00",
        "Local time `newsletter run` sends the daily digest (of the day before); empty for none",
    ),
    Setting(
        "schedule.weekly",
        "weekly_time",
        "monday 07:00",
        "Weekday and local time `newsletter run` sends the weekly digest (of the ISO week before); empty for none",
    ),
    Setting(
        "schedule.late_limit",
        "int",
        43200,
        "Seconds a scheduled send or digest may be late (machine off); older ones are skipped with a warning",
        limits=(1, 366 * DAY),
    ),
    Setting(
        "schedule.full_text",
        "bool",
        False,
        "Digests carry each article's full text, not only its title, summary and link",
    ),
    Setting("feeds.timeout", "float", 20.0, "Seconds to wait for a feed over HTTP", limits=(0.1, 3600)),
    Setting("sender.name", "str", "My Newsletter", "Display name in From"),
    Setting("sender.address", "email", "newsletter@example.org", "From address"),
    Setting(
        "sender.envelope",
        "str",
        "",
        "Envelope sender (bounce address); may contain {token}; empty means sender.address",
    ),
    Setting(
        "web.url",
        "url",
        "",
        "Public URL of `newsletter serve` (unsubscribe, confirm, archive); empty means site_url",
    ),
    Setting(
        "web.proxies",
        "str",
        "",
        "Addresses of the reverse proxies in front of `newsletter serve` whose X-Forwarded-For/Proto "
        "are believed, comma-separated (e.g. 127.0.0.1); empty believes none",
    ),
    Setting(
        "subscribe.pending_ttl",
        "int",
        604800,
        "Seconds a subscription may stay unconfirmed; then its data is deleted (default 7 days)",
    ),
    Setting(
        "subscribe.per_address",
        "int",
        3,
        "Confirmation emails the subscribe form sends to one address in 24 hours at most",
    ),
    Setting(
        "subscribe.per_client",
        "int",
        10,
        "Subscribe form posts one client address may make in an hour",
    ),
    Setting(
        "smtp.url",
        "smtp_url",
        "",
        "Relay: smtp://host:587 (STARTTLS), smtps://host:465, smtp+plain://host:25; "
        "empty means the built-in capture server that writes outbox/*.eml",
    ),
    Setting(
        "smtp.relays",
        "relays",
        "",
        "Further relays sharing the load with smtp.url, by weight: "
        "'smtp://b.example:587 2, smtps://c.example:465 1' (smtp.url has weight smtp.weight)",
    ),
    Setting(
        "smtp.weight", "int", 1, "Share of connections that go to smtp.url when smtp.relays is set",
        limits=(1, 1000),
    ),
    Setting("smtp.username", "str", "", "SMTP AUTH user name, empty for no AUTH"),
    Setting(
        "smtp.password_file",
        "path",
        "",
        "File holding the SMTP password (or set NEWSLETTER_SMTP_PASSWORD)",
    ),
    Setting("smtp.tls_verify", "bool", True, "Verify the relay's TLS certificate"),
    Setting(
        "smtp.ca_file",
        "path",
        "",
        "PEM file of the CA that signed the relay's certificate, empty for the system's CAs",
    ),
    Setting(
        "smtp.timeout", "float", 30.0, "Seconds to wait for the relay on each command (0.1 to 3600)",
        limits=(0.1, 3600),
    ),
    Setting(
        "smtp.connect_retry",
        "float",
        60.0,
        "Seconds to keep retrying (with backoff) a relay that cannot be reached before the run fails",
        limits=(0, 86400),
    ),
    Setting(
        "sending.concurrency", "int", 8, f"SMTP connections used at once (1 to {MAX_CONCURRENCY})",
        limits=(1, MAX_CONCURRENCY),
    ),
    Setting(
        "sending.rate", "float", 0.0, "Messages per second at most, 0 for no limit",
        limits=(0, 100_000),
    ),
    Setting(
        "sending.per_connection", "int", 100, "Messages sent over one connection before a new one",
        limits=(1, 1_000_000),
    ),
    Setting(
        "sending.processes",
        "int",
        1,
        "Processes that share the connections of a large campaign (one per CPU core at most)",
        limits=(1, 64),
    ),
    Setting(
        "sending.signing",
        "signing",
        "process",
        "Where DKIM signatures are made: process (a signer process beside the sender), thread, "
        "or inline (in the sending loop, slowest)",
    ),
    Setting(
        "sending.signers",
        "signers",
        0,
        "DKIM signer processes (or threads) per sending process; 0 = one per CPU core the senders leave, at most 4",
        limits=(0, 64),
    ),
    Setting(
        "sending.lease",
        "float",
        60.0,
        "Seconds a sender's claim on a campaign lasts unless renewed; after that another process may take over",
        limits=(1, 3600),
    ),
    Setting(
        "sending.buffer_mb",
        "int",
        64,
        "Megabytes of built messages waiting for a connection, at most (bounds memory)",
        limits=(1, 4096),
    ),
    Setting(
        "sending.max_message_mb",
        "float",
        10.0,
        "Largest email a campaign may send, in megabytes; a larger article is refused before anything is queued",
        limits=(0.01, 1024),
    ),
    Setting(
        "retry.min_backoff", "int", 300, "Seconds before the first retry of a deferred message",
        limits=(1, 7 * DAY),
    ),
    Setting(
        "retry.max_backoff", "int", 4000, "Longest wait between retries, in seconds",
        limits=(1, 7 * DAY),
    ),
    Setting(
        "retry.lifetime", "int", 432000, "Seconds after which a deferred message fails",
        limits=(1, 366 * DAY),
    ),
    Setting(
        "bounces.source",
        "str",
        "",
        "Return mailbox `newsletter run` reads: a Maildir or mbox path, or imap(s)://user@host/folder "
        f"(password in {ENV_BOUNCES_PASSWORD}); empty for none",
    ),
    Setting("bounces.soft_limit", "int", 3, "Soft bounces within bounces.soft_window that suppress an address"),
    Setting("bounces.soft_window", "int", 30, "Days over which soft bounces are counted"),
    Setting("dkim.selector", "str", "", "DKIM selector, empty for no signature"),
    Setting("dkim.domain", "str", "", "DKIM signing domain (d=), normally the From domain"),
    Setting("dkim.key_file", "path", "", "PEM file of the DKIM private key"),
    Setting(
        "backup.dir",
        "path",
        "",
        "Folder where `newsletter run` keeps a daily backup of the database; empty for none",
    ),
    Setting("backup.keep", "int", 7, "How many daily backups to keep in backup.dir", limits=(1, 3650)),
    Setting(
        "prune.older_than",
        "age",
        "",
        "Age (e.g. 90d, 12w) after which `newsletter run` folds a finished campaign's delivery rows "
        "into counts; empty for never",
    ),
    Setting(
        "check.nameservers",
        "nameservers",
        "",
        "DNS servers `newsletter check` asks, as 'host' or 'host:port' separated by commas "
        "(e.g. '127.0.0.1:5353'); empty means the system's resolvers",
    ),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    """The validated settings; paths are absolute."""

    root: Path
    database: Path
    templates: Path
    publication_name: str
    publication_language: str
    publication_site_url: str
    publication_list_id: str
    publication_postal_address: str
    publication_logo_url: str
    publication_logo_width: int
    publication_logo_height: int
    publication_time_zone: str
    schedule_daily: str
    schedule_weekly: str
    schedule_late_limit: int
    schedule_full_text: bool
    feeds_timeout: float
    publication_feedback_id: str
    sender_name: str
    sender_address: str
    sender_envelope: str
    web_url: str
    web_proxies: str
    subscribe_pending_ttl: int
    subscribe_per_address: int
    subscribe_per_client: int
    smtp_url: str
    smtp_relays: tuple[tuple[str, int], ...]
    smtp_weight: int
    smtp_username: str
    smtp_password_file: Path | None
    smtp_tls_verify: bool
    smtp_ca_file: Path | None
    smtp_timeout: float
    smtp_connect_retry: float
    sending_concurrency: int
    sending_rate: float
    sending_per_connection: int
    sending_processes: int
    sending_signing: str
    sending_signers: int
    sending_lease: float
    sending_buffer_mb: int
    sending_max_message_mb: float
    retry_min_backoff: int
    retry_max_backoff: int
    retry_lifetime: int
    bounces_source: str
    bounces_soft_limit: int
    bounces_soft_window: int
    dkim_selector: str
    dkim_domain: str
    dkim_key_file: Path | None
    backup_dir: Path | None
    backup_keep: int
    prune_older_than: int | None  # days
    check_nameservers: tuple[tuple[str, int], ...]
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def public_url(self) -> str:
        """Base URL of the web endpoints (unsubscribe, confirm, web view), no trailing slash."""
        return (self.web_url or self.publication_site_url).rstrip("/")

    @property
    def outbox(self) -> Path:
        """Where the built-in capture server writes messages."""
        return self.root / "outbox"

    def smtp_password(self) -> str | None:
        """The SMTP password from NEWSLETTER_SMTP_PASSWORD or smtp.password_file, if any.

        Read on demand so it is never part of a printed or stored configuration.
        """
        if os.environ.get(ENV_PASSWORD):
            return os.environ[ENV_PASSWORD]
        if self.smtp_password_file is None:
            return None
        try:
            return self.smtp_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"smtp.password_file: cannot read {self.smtp_password_file}: {exc.strerror}"
            ) from exc


    def bounces_password(self) -> str | None:
        """The IMAP password of bounces.source, from NEWSLETTER_BOUNCES_PASSWORD only."""
        return os.environ.get(ENV_BOUNCES_PASSWORD) or None


def find_config_file(explicit: str | Path | None = None, cwd: Path | None = None) -> Path:
    """The newsletter.toml to use: the explicit path, $NEWSLETTER_CONFIG, or ./newsletter.toml."""
    chosen = explicit or os.environ.get(ENV_CONFIG)
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise NotInitialisedError(
                f"{path} does not exist. Run `newsletter init {path.parent}` to create it, "
                "or point --config at an existing newsletter.toml."
            )
        return path.resolve()
    here = (cwd or Path.cwd()) / CONFIG_NAME
    if not here.is_file():
        raise NotInitialisedError(
            f"no {CONFIG_NAME} in {here.parent}: this is not a newsletter directory. "
            "Run `newsletter init` here first, or cd to the directory you initialised, "
            "or pass --config PATH (or set NEWSLETTER_CONFIG)."
        )
    return here.resolve()


def load_config(
    config_file: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read, merge and validate the settings. Raises ConfigError naming key and source."""
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_file}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file}: not valid TOML: {exc}") from exc
    from_file = _flatten(raw, config_file)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        values[setting.key], sources[setting.key] = setting.default, "default"
    for key, value in from_file.items():
        values[key], sources[key] = value, str(config_file)
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in SPECIAL_ENV:
            continue
        from_env = _setting_for_env(name)
        if from_env is None:
            continue
        values[from_env.key], sources[from_env.key] = value, f"environment variable {name}"
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in SETTINGS_BY_KEY:
            raise ConfigError(f"unknown setting {key!r}")
        values[key], sources[key] = value, "command-line option"

    root = config_file.parent
    # Before any other check of the URLs, so that no message about them can show a secret.
    for key in ("smtp.url", "smtp.relays"):
        if sources[key] == str(config_file) and _holds_password(values[key]):
            raise ConfigError(
                f"{config_file}: {key} contains a password; secrets are never read from "
                f"newsletter.toml. Remove it and set {ENV_PASSWORD} or smtp.password_file."
            )
    checked = {}
    for setting in SETTINGS:
        checked[setting.field] = _check(setting, values[setting.key], sources[setting.key], root)
    for key in ("database", "templates"):  # the other paths are optional: empty means none
        if checked[key] is None:
            raise ConfigError(
                f"{key} (from {sources[key]}): must not be empty; the default is "
                f"{SETTINGS_BY_KEY[key].default!r}"
            )
    if checked["publication_logo_width"] > LOGO_MAX_WIDTH:
        raise ConfigError(
            f"publication.logo_width (from {sources['publication.logo_width']}): "
            f"{checked['publication_logo_width']} px does not fit the 600 px email; "
            f"at most {LOGO_MAX_WIDTH}, with logo_height scaled to match"
        )
    if checked["retry_min_backoff"] > checked["retry_max_backoff"]:
        raise ConfigError(
            f"retry.min_backoff ({checked['retry_min_backoff']}) is larger than "
            f"retry.max_backoff ({checked['retry_max_backoff']}); make it smaller or equal"
        )
    if bool(checked["dkim_selector"]) != bool(checked["dkim_key_file"]):
        raise ConfigError(
            "dkim.selector and dkim.key_file go together: set both to sign, or neither "
            "(run `newsletter dkim keygen` to make a key)"
        )
    if checked["smtp_relays"] and not checked["smtp_url"]:
        raise ConfigError(
            "smtp.relays is set but smtp.url is empty: set smtp.url to the first relay"
        )
    if urlsplit(checked["bounces_source"]).password:
        raise ConfigError(
            f"bounces.source (from {sources['bounces.source']}) contains a password; set "
            f"{ENV_BOUNCES_PASSWORD} instead"
        )
    return Config(root=root, sources=sources, **checked)


def _holds_password(value: Any) -> bool:
    """Whether a URL (or a relays list) has user:password@ in it, however broken it is."""
    return isinstance(value, str) and any(
        ":" in match.group().removeprefix(match["scheme"] or "")
        for part in value.split(",")
        if (match := _USERINFO_RE.match(part.strip()))
    )


def _flatten(raw: Mapping[str, Any], config_file: Path) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[f"{name}.{sub}"] = subvalue
        else:
            flat[name] = value
    for key in flat:
        if key in SETTINGS_BY_KEY:
            continue
        if key in ("smtp.password", "password"):
            raise ConfigError(
                f"{config_file}: {key} is not allowed: secrets are never read from "
                f"newsletter.toml. Set {ENV_PASSWORD} or point smtp.password_file at a file."
            )
        import difflib  # not at the top: only a mistyped key needs it (CLI start)

        hint = difflib.get_close_matches(key, SETTINGS_BY_KEY, n=1)
        also = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(
            f"{config_file}: unknown key {key!r}{also}. "
            "The known keys are listed in the README's configuration table."
        )
    return flat


def _setting_for_env(name: str) -> Setting | None:
    for setting in SETTINGS:
        if setting.env == name:
            return setting
    return None


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """NEWSLETTER_* variables that match no setting (probably typos)."""
    environ = os.environ if environ is None else environ
    known = {s.env for s in SETTINGS} | SPECIAL_ENV
    return sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known)


# RFC 2606 and RFC 6761: names that can never be anyone's real domain.
RESERVED_DOMAINS = ("example.com", "example.org", "example.net", "example.edu")
RESERVED_TLDS = ("example", "test", "invalid", "localhost", "local")


def is_placeholder_domain(domain: str) -> bool:
    """A domain reserved for examples (the defaults `init` writes are such names)."""
    domain = domain.lower().rstrip(".")
    if domain.rpartition(".")[2] in RESERVED_TLDS:
        return True
    return any(domain == d or domain.endswith("." + d) for d in RESERVED_DOMAINS)


def placeholders(config: Config) -> list[str]:
    """The settings still on an example placeholder (or empty where subscribers need a value),
    each as `key (what it holds)`; empty when the configuration is ready for a real send."""
    found = []
    for key, value, domain in (
        ("sender.address", config.sender_address, config.sender_address.rpartition("@")[2]),
        ("sender.envelope", config.sender_envelope, config.sender_envelope.rpartition("@")[2]),
        ("publication.site_url", config.publication_site_url, urlsplit(config.publication_site_url).hostname),
        ("web.url", config.web_url, urlsplit(config.web_url).hostname),
        ("publication.list_id", config.publication_list_id, config.publication_list_id),
    ):
        if value and is_placeholder_domain(domain or ""):
            found.append(f"{key} ({value} is a placeholder)")
    if not config.publication_postal_address.strip():
        found.append("publication.postal_address (empty; the footer of every email shows it)")
    return found


def list_id_for(site_url: str) -> str | None:
    """A List-Id label derived from the site's host (`www.` dropped), or None without one."""
    host = (urlsplit(site_url).hostname or "").rstrip(".")
    host = host[4:] if host.startswith("www.") and host.count(".") > 1 else host
    import idna  # not at the top: only `init` derives a List-Id, and idna is slow to import (CLI start)

    try:  # IDNA 2008 (UTS 46), as headers.ascii_domain writes domains
        return idna.encode(host, uts46=True).decode("ascii").lower() if "." in host else None
    except (UnicodeError, idna.IDNAError):
        return None


def _check(setting: Setting, value: Any, source: str, root: Path) -> Any:
    where = f"{setting.key} (from {source})"
    checker = _CHECKERS[setting.kind]
    try:
        checked = checker(value, root)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if setting.limits is not None:
        low, high = setting.limits
        if not low <= checked <= high:
            raise ConfigError(f"{where}: must be between {low:g} and {high:g}, not {checked:g}")
    return checked


def _as_str(value: Any, _root: Path) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be text in quotes, not {value!r}")
    # Names and the publication go into headers: one line of text (text.py), tabs aside.
    char = forbidden_char(value, tab=True)
    if char is not None:
        if is_line_break(char):
            raise ValueError("must be one line (no line breaks)")
        raise ValueError(f"must be one line of text, without the control character U+{ord(char):04X}")
    return value.strip()


def _as_int(value: Any, _root: Path) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise TypeError(f"must be a whole number, not {value!r}")  # int() would cut 2.5 to 2
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a whole number, not {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be greater than 0, not {number}")
    return number


def _as_float(value: Any, _root: Path) -> float:
    if isinstance(value, bool):
        raise TypeError(f"must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, not {value!r}")
    if number < 0:
        raise ValueError(f"must be 0 or more, not {value!r}")
    return number


def _as_bool(value: Any, _root: Path) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, not {value!r}")


# An address email-validator accepts and returns unchanged: lower-case ASCII, a dot-atom
# before the @, host-name labels without "--" (so no xn-- to decode) ending in a letter, a
# top-level domain that is not special-use, and within the length limits. Checked by this
# pattern alone, so loading the settings does not import email-validator, whose patterns are
# a large part of every command's start (tests/test_config_email.py checks that both agree).
# Any other address goes to email-validator.
_PLAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_EMAIL_RE = re.compile(rf"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:{_PLAIN_LABEL}\.)+[a-z]{{2,63}}")
SPECIAL_USE_TLDS = ("arpa", "invalid", "local", "localhost", "onion", "test")


def is_plain_email(text: str) -> bool:
    """Whether `text` is an address email-validator would accept and leave as it is."""
    local, _, domain = text.rpartition("@")
    return (
        len(text) <= 254 and len(local) <= 64 and len(domain) <= 253
        and _PLAIN_EMAIL_RE.fullmatch(text) is not None
        and "--" not in domain
        and domain.rpartition(".")[2] not in SPECIAL_USE_TLDS
    )


def _as_email(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    if is_plain_email(text):
        return text
    # Imported here, not at the top: see _PLAIN_EMAIL_RE (CLI start).
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{text!r} is not an email address: {exc}") from None


# Characters a URL may not hold as is (RFC 3986), which would also break the <...> of
# List-Unsubscribe or an href: the URL goes into headers and links of every email.
_URL_UNSAFE_RE = re.compile(r"[\s<>\"'{}|\\^`]")


def _as_url(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL such as https://example.org, not {text!r}")
    bad = _URL_UNSAFE_RE.search(text)
    if bad or not text.isascii():
        shown = repr(bad.group()) if bad else "non-ASCII text"
        raise ValueError(
            f"{text!r} holds {shown}, which cannot go into an email's links and headers; "
            "percent-encode it (a host name in its xn-- form)"
        )
    return text.rstrip("/")


# The userinfo of a URL (user:password@), wherever the URL is otherwise broken.
_USERINFO_RE = re.compile(r"^(?P<scheme>[^:/@]*://)?[^/@]*@")


def redact_url(url: str) -> str:
    """`url` without its user name and password, safe to print."""
    return _USERINFO_RE.sub(lambda m: f"{m['scheme'] or ''}***@", url, count=1)


def _as_https_url(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(
            f"must be an https:// URL such as https://example.org/logo.png, not {text!r} "
            "(mail clients block images over plain http)"
        )
    return text


def _as_smtp_url(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    if not text:
        return ""
    shown = repr(redact_url(text))  # an error message never echoes a password
    parts = urlsplit(text)
    if parts.scheme not in ("smtp", "smtps", "smtp+plain") or not parts.hostname:
        raise ValueError(
            "must look like smtp://host:587 (STARTTLS), smtps://host:465 (TLS) or "
            f"smtp+plain://host:25 (no TLS), not {shown}"
        )
    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError(f"has an invalid port: {shown}") from None
    return text


def _as_relays(value: Any, root: Path) -> tuple[tuple[str, int], ...]:
    text = _as_str(value, root)
    relays = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        url, _, weight = item.partition(" ")
        weight = weight.strip() or "1"
        if not weight.isdigit() or int(weight) < 1:
            raise ValueError(
                f"the weight of {redact_url(url)!r} must be a whole number of 1 or more, not {weight!r}"
            )
        relays.append((_as_smtp_url(url, root), int(weight)))
    return tuple(relays)


# RFC 2919's list-id is a dot-atom; we keep it to a domain-like label, as the help says.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_LIST_ID_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")


def _as_list_id(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    try:
        label = text.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        label = text
    if not _LIST_ID_RE.fullmatch(label):
        raise ValueError(
            f"{text!r} is not a List-Id label: use a domain-like name you own, with dots and "
            "no spaces, such as newsletter.example.org"
        )
    return text


# Feedback-ID (Gmail): colon-separated fields of printable ASCII, no spaces.
_FEEDBACK_ID_RE = re.compile(r"[!-~]+")


def _as_feedback_id(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    if text and not _FEEDBACK_ID_RE.fullmatch(text):
        raise ValueError(
            f"{text!r} must be ASCII without spaces, like campaign:newsletter:publisher:SenderId"
        )
    return text


def _as_nameservers(value: Any, root: Path) -> tuple[tuple[str, int], ...]:
    """'host' or 'host:port' (an IPv6 address as [::1]:5353), separated by commas."""
    text = _as_str(value, root)
    servers = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") if rest.startswith(":") else ("" if not rest else "x")
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        else:
            host, port = item, ""  # a name, an IPv4 address or a bare IPv6 address
        if not host or any(c.isspace() for c in host):
            raise ValueError(f"{item!r} is not a host or host:port")
        if port and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ValueError(f"the port of {item!r} must be a number from 1 to 65535")
        servers.append((host, int(port) if port else 53))
    return tuple(servers)


def _as_lang(value: Any, root: Path) -> str:
    text = _as_str(value, root).lower()
    if text not in LANGUAGES:
        raise ValueError(f"must be one of {', '.join(LANGUAGES)}, not {text!r}")
    return text


SIGNING_MODES = ("process", "thread", "inline")


def _as_signing(value: Any, root: Path) -> str:
    text = _as_str(value, root).lower()
    if text not in SIGNING_MODES:
        raise ValueError(f"must be one of {', '.join(SIGNING_MODES)}, not {text!r}")
    return text


def _as_signers(value: Any, root: Path) -> int:
    if value in (0, "0"):
        return 0  # one per core
    return _as_int(value, root)


def _as_zone(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not a time zone name such as Europe/Amsterdam") from None
    return text


def _as_daily_time(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    entry = parse_schedule("daily", text)
    return str(entry).removeprefix("daily ") if entry else ""


def _as_weekly_time(value: Any, root: Path) -> str:
    text = _as_str(value, root)
    entry = parse_schedule("weekly", text)
    return str(entry).removeprefix("weekly ") if entry else ""


def _as_path(value: Any, root: Path) -> Path | None:
    text = _as_str(value, root)
    if not text:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path


PRUNE_MIN_DAYS = 30


def parse_age(text: str) -> int:
    """Days in an age such as '90d', '12w' or '90' (days); at least PRUNE_MIN_DAYS.

    The floor keeps what a digest looks back on (a week and a period) and the 24 hours of
    confirmation resends well clear of the rows a prune folds.
    """
    match = re.fullmatch(r"\s*(\d{1,5})\s*([dw]?)\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not an age such as 90d (days) or 12w (weeks)")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if days < PRUNE_MIN_DAYS:
        raise ValueError(f"{text!r} is too short: folding needs campaigns at least {PRUNE_MIN_DAYS} days old")
    return days


def _as_age(value: Any, root: Path) -> int | None:
    text = _as_str(value, root)
    return parse_age(text) if text else None


LANGUAGES = ("nl", "en")

_CHECKERS: dict[str, Callable[[Any, Path], Any]] = {
    "str": _as_str,
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "email": _as_email,
    "url": _as_url,
    "https_url": _as_https_url,
    "smtp_url": _as_smtp_url,
    "list_id": _as_list_id,
    "feedback_id": _as_feedback_id,
    "relays": _as_relays,
    "nameservers": _as_nameservers,
    "lang": _as_lang,
    "signing": _as_signing,
    "signers": _as_signers,
    "zone": _as_zone,
    "daily_time": _as_daily_time,
    "weekly_time": _as_weekly_time,
    "path": _as_path,
    "age": _as_age,
}


def config_template(**values: Any) -> str:
    """The commented newsletter.toml that `newsletter init` writes.

    `values` (dotted keys) replace defaults in the written file.
    """
    lines = [
        "# newsletter configuration. Every key may also be set by an environment variable",
        "# (NEWSLETTER_ + the key in capitals, dots as underscores, e.g. NEWSLETTER_SMTP_URL)",
        "# or by a command-line option; those take precedence over this file.",
        f"# Secrets are never read from this file: set {ENV_PASSWORD}",
        "# or point smtp.password_file at a file that holds the password.",
        "",
    ]
    section = None
    for setting in SETTINGS:
        head, _, name = setting.key.rpartition(".")
        if head != section and head:
            lines += ["", f"[{head}]"]
            section = head
        value = values.get(setting.key, setting.default)
        lines.append(f"# {setting.help}")
        lines.append(f"{name or setting.key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'

"""Run the web app on uvicorn: proxy headers only from the configured proxies, tokens kept out of logs.

uvicorn's access log prints every request's path, and the paths of the subscriber links
carry their secret token; a logging filter replaces the token before any line is written,
so neither the terminal, a journal nor a log file ever holds one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import uvicorn

from ..config import Config
from ..content.render import CONFIRM_PATH, PREFERENCES_PATH, UNSUBSCRIBE_PATH
from .app import create_app

_TOKEN_PATH_RE = re.compile(r"/([ucp])/[^/?#\s\"]+")


def redact(text: str) -> str:
    """`text` with the token of every /u/, /c/ and /p/ path replaced."""
    return _TOKEN_PATH_RE.sub(r"/\1/[token]", text)


class RedactTokens(logging.Filter):
    """A filter that removes link tokens from a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


@dataclass(frozen=True)
class ServeInfo:
    """What `serve` tells its user at start."""

    listen_url: str
    public_url: str
    links: tuple[str, ...]
    proxies: tuple[str, ...]


def proxies_of(config: Config) -> tuple[str, ...]:
    return tuple(p.strip() for p in config.web_proxies.split(",") if p.strip())


def describe(config: Config, *, host: str, port: int) -> ServeInfo:
    shown_host = f"[{host}]" if ":" in host else host
    base = config.public_url
    return ServeInfo(
        listen_url=f"http://{shown_host}:{port}",
        public_url=base,
        links=(
            f"{base}{UNSUBSCRIBE_PATH}TOKEN",
            f"{base}{CONFIRM_PATH}TOKEN",
            f"{base}{PREFERENCES_PATH}TOKEN",
            f"{base}/archive/SLUG",
        ),
        proxies=proxies_of(config),
    )


def serve(config: Config, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM)."""
    proxies = proxies_of(config)
    server_config = uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=list(proxies) if proxies else None,
        server_header=False,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
    ours = logging.getLogger("newsletter.web")
    ours.handlers = list(logging.getLogger("uvicorn.error").handlers)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    redactor = RedactTokens()
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn", "newsletter.web"):
        logger = logging.getLogger(name)
        logger.addFilter(redactor)
        for handler in logger.handlers:
            handler.addFilter(redactor)
    uvicorn.Server(server_config).run()

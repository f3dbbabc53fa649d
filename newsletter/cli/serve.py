"""`newsletter serve`: the web side of the emails (unsubscribe, confirm, preferences, form, archive)."""

from __future__ import annotations

import click

from .common import App, pass_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep 127.0.0.1 behind a reverse proxy on the same machine.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@pass_app
def serve(app: App, host: str, port: int) -> None:
    """Answer the links in the emails: one-click unsubscribe, confirm, preferences, the
    subscribe form and the web archive, until Ctrl-C.

    Run it behind a reverse proxy (Caddy, nginx) that serves web.url over HTTPS.
    """
    # Imported here, not at the top: Starlette and uvicorn are needed by this command only,
    # and every other command starts faster without them.
    from ..web.server import describe
    from ..web.server import serve as run_server

    config = app.config
    app.db.execute("SELECT 1")  # opens it and applies pending migrations before the first request
    info = describe(config, host=host, port=port)
    app.info(f"Serving on {info.listen_url} (Ctrl-C stops).")
    app.info(f"The links in emails point to {info.public_url}: " + ", ".join(info.links))
    if not config.web_url:
        app.warn(
            "web.url is not set, so the links in emails point to publication.site_url. Set web.url "
            "to the public https:// address your reverse proxy serves this on."
        )
    if info.proxies:
        app.info(f"X-Forwarded-For/-Proto are believed from {', '.join(info.proxies)} only (web.proxies).")
    run_server(config, host=host, port=port)

"""`newsletter prune`: fold the delivery rows of old, finished campaigns into counts.

Click only: which campaigns and how is newsletter/delivery/prune.py's.
"""

from __future__ import annotations

import click

from ..delivery.prune import age_days, prune
from .common import App, echo_json, json_option, pass_app


@click.command("prune")
@click.option("--older-than", "older_than", metavar="AGE",
              help="Fold campaigns finished longer ago than AGE (90d, 12w; at least 30 days). "
                   "Default: the setting prune.older_than.")
@click.option("--dry-run", is_flag=True, help="Say what would be folded; change nothing.")
@json_option
@pass_app
def prune_command(app: App, older_than: str | None, dry_run: bool, as_json: bool) -> None:
    """Fold old campaigns' delivery rows into per-campaign counts, to keep the database small.

    A campaign finished more than AGE ago keeps its counts per status (`newsletter status`
    shows them), its archive page and every subscriber, suppression, bounce and event; only
    its row per recipient goes. A campaign still sending or with deferred rows is never
    folded.
    """
    days = age_days(older_than, setting=app.config.prune_older_than)
    folds = prune(app.db, older_than_days=days, dry_run=dry_run)
    if as_json:
        echo_json([{"campaign": f.campaign_id, "kind": f.kind, "subject": f.subject,
                    "finished_at": f.finished_at, "rows": f.rows, "counts": f.counts} for f in folds])
        return
    verb = "Would fold" if dry_run else "Folded"
    for f in folds:
        counts = ", ".join(f"{n} {status}" for status, n in f.counts.items())
        app.info(f"{verb} campaign {f.campaign_id} ({f.kind}, finished {f.finished_at[:10]}): {f.rows} rows ({counts})")
    rows = sum(f.rows for f in folds)
    if not folds:
        app.info(f"Nothing to fold: no finished campaign is older than {days} days.")
    else:
        app.info(f"{verb} {rows} delivery rows of {len(folds)} campaign(s) finished more than {days} days ago.")

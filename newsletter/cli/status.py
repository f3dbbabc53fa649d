"""`newsletter status`: per campaign, deliveries per status, rate, elapsed time and ETA.

Click only: it reads through delivery/records.py (which imports nothing of the sending
engine, so `status` starts fast) and prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from ..db import now
from ..delivery.records import (
    FAILURE_COLUMNS,
    Campaign,
    failed_deliveries,
    folded_at,
    get_campaign,
    last_sent_at,
    lease_is_live,
    list_campaigns,
    next_retry_at,
    shown_counts,
)
from .common import App, echo_json, echo_table, json_option, pass_app


@click.command()
@click.argument("campaign_id", metavar="CAMPAIGN", type=int, required=False)
@click.option("--failures", is_flag=True, help="List the recipients that were not sent, with the reply.")
@json_option
@pass_app
def status(app: App, campaign_id: int | None, failures: bool, as_json: bool) -> None:
    """Per campaign: deliveries per status, rate, elapsed time and ETA.

    A campaign whose sender is gone (killed, or its machine stopped) shows `interrupted`:
    `newsletter resume CAMPAIGN` finishes it.
    """
    db = app.reader
    campaigns = [get_campaign(db, campaign_id)] if campaign_id is not None else list_campaigns(db)
    if failures:
        rows = failed_deliveries(db, [c.id for c in campaigns])
        for c in campaigns:
            folded = folded_at(db, c.id)
            if folded:
                app.info(f"Campaign {c.id}'s delivery rows were folded into counts on {folded[:10]} "
                         "(`newsletter prune`): its recipients are no longer listed.")
        if as_json:
            echo_json(rows)
        else:
            echo_table(rows, list(FAILURE_COLUMNS))
        return
    rows = [_campaign_row(app, c) for c in campaigns]
    if as_json:
        echo_json(rows if campaign_id is None else rows[0])
        return
    if not rows:
        app.info("No campaigns yet: `newsletter send ARTICLE` starts one.")
        return
    echo_table(
        rows,
        ["id", "kind", "status", "subject", "total", "sent", "queued", "sending", "deferred",
         "bounced", "failed", "skipped", "cancelled", "rate", "elapsed", "eta"],
    )


def _campaign_row(app: App, campaign: Campaign) -> dict[str, Any]:
    db = app.reader
    # Each campaign's rows are read only where the answer is in them: a finished campaign's
    # counts are stored in its row, and a year of digests lists in milliseconds.
    counts = shown_counts(db, campaign)
    next_retry = next_retry_at(db, campaign.id) if counts["deferred"] else None
    elapsed = rate = eta = None
    live = lease_is_live(campaign.lease_owner, campaign.lease_expires_at)
    shown = campaign.status
    if shown in ("creating", "sending") and not live:
        shown = "interrupted"  # killed (or its machine stopped): `resume` finishes it
    if campaign.started_at:
        # From the first run's start to the end (or the last message, or now while sending).
        end = (campaign.finished_at or (now() if live else last_sent_at(db, campaign.id))
               or campaign.started_at)
        span = (datetime.fromisoformat(end) - datetime.fromisoformat(campaign.started_at)).total_seconds()
        elapsed = round(span, 1)
        rate = round(counts["sent"] / span, 1) if span > 0 else None
        remaining = counts["queued"] + counts["sending"]
        if rate and remaining and live:
            eta = round(remaining / rate, 1)
    subject = campaign.subject if len(campaign.subject) <= 40 else campaign.subject[:39] + "…"
    return {
        "id": campaign.id,
        "kind": campaign.kind,
        "article": campaign.article_slug,
        "status": shown,
        "subject": subject,
        "total": campaign.total,
        **counts,
        "rate": rate,
        "elapsed": elapsed,
        "eta": eta,
        "next_retry_at": next_retry,
        "created_at": campaign.created_at,
        "finished_at": campaign.finished_at,
    }

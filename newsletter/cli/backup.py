"""`newsletter backup FILE`: a consistent, verified copy of the database, safe while sending.

Click only: the copy and its check are newsletter/backup.py's.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..backup import backup_database
from .common import App, pass_app


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@pass_app
def backup(app: App, file: Path) -> None:
    """Copy the database to FILE (0600), consistently, even while a campaign sends.

    The copy is opened and checked (integrity_check) before it replaces FILE. To restore,
    put it where `database` points and run `newsletter resume CAMPAIGN` for any campaign
    that was sending: what the backup had not seen as sent goes out again, with the same
    Message-ID.
    """
    made = backup_database(app.db, file)
    app.info(
        f"Backed up {app.config.database} to {made.path}: {made.size / 1e6:.1f} MB, "
        f"{made.subscribers} subscribers, {made.campaigns} campaigns, integrity checked, "
        f"in {made.seconds:.1f}s."
    )

"""Create a newsletter directory: newsletter.toml, the database and an editable templates/ copy."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import packaged_templates
from .config import CONFIG_NAME, SETTINGS_BY_KEY, config_template, list_id_for, load_config, placeholders
from .db import open_db
from .errors import ConfigError


@dataclass
class InitResult:
    """What `init` made and what it found already there."""

    directory: Path
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # settings not written: the file existed
    to_fill_in: list[str] = field(default_factory=list)  # placeholders left in newsletter.toml


def init_directory(
    directory: Path, *, values: dict[str, Any] | None = None, list_id_from_site: bool = False
) -> InitResult:
    """Create what is missing in `directory`; never overwrite anything that exists.

    With list_id_from_site (what `newsletter init` does), a publication.site_url given
    without a publication.list_id also sets the List-Id label to the site's host (RFC 2919:
    a name the publisher owns) instead of the placeholder."""
    values = {k: v for k, v in (values or {}).items() if v is not None}
    for key in values:
        if key not in SETTINGS_BY_KEY:
            raise ConfigError(f"unknown setting {key!r}")
    result = InitResult(directory=directory)
    directory.mkdir(parents=True, exist_ok=True)

    config_file = directory / CONFIG_NAME
    if config_file.exists():
        result.existing.append(CONFIG_NAME)
        result.ignored = sorted(values)
    else:
        derived = list_id_for(str(values["publication.site_url"])) if "publication.site_url" in values else None
        if list_id_from_site and derived and "publication.list_id" not in values:
            values["publication.list_id"] = derived
        text = config_template(**values)
        config_file.write_text(text, encoding="utf-8")
        try:
            load_config(config_file, environ={})
        except ConfigError:
            config_file.unlink()  # a bad --option must not leave a broken file behind
            raise
        result.created.append(CONFIG_NAME)

    # The environment counts from here on: NEWSLETTER_DB or NEWSLETTER_TEMPLATES put the
    # database or the templates where every later command will look for them.
    config = load_config(config_file)
    result.to_fill_in = placeholders(config)
    templates = config.templates
    if not templates.is_dir():
        templates.mkdir(parents=True)
    source = packaged_templates()
    for item in sorted(source.rglob("*")):
        if not item.is_file() or "__pycache__" in item.parts:
            continue
        rel = item.relative_to(source)
        target = templates / rel
        label = str(target.relative_to(directory)) if target.is_relative_to(directory) else str(target)
        if target.exists():
            result.existing.append(label)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, target)
            result.created.append(label)

    # --db names the database to create even when newsletter.toml existed already.
    database = Path(values["database"]) if "database" in values else config.database
    label = str(database.relative_to(directory)) if database.is_relative_to(directory) else str(database)
    if database.exists():
        result.existing.append(label)
    else:
        result.created.append(label)
    open_db(database).conn.close()
    return result

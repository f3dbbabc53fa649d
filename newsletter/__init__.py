"""newsletter: email a publisher's articles and digests to its subscribers."""

from pathlib import Path

__version__ = "0.1.0"


def packaged_templates() -> Path:
    """The templates installed with the package (the defaults `init` copies, and the ones
    rendering falls back on for a template the user removed)."""
    from importlib import resources  # not at the top: every command imports this package (CLI start)

    return Path(str(resources.files("newsletter") / "templates"))

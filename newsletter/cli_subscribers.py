"""Subscriber commands (being written)."""

import click


@click.command()
def subscribe() -> None:
    """Add a subscriber."""


@click.command()
def unsubscribe() -> None:
    """Unsubscribe an address."""


@click.group()
def subscribers() -> None:
    """List, import, export and erase subscribers."""

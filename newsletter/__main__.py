"""`python -m newsletter` runs the command-line interface."""

from .cli.main import cli

if __name__ == "__main__":
    cli(prog_name="newsletter")

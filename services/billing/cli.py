"""Billing's subcommands of ``govmeter``."""


def register(sub) -> None:
    """Add billing's subcommands to the ``govmeter`` parser."""

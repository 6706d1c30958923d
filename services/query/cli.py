"""Query and report subcommands of ``govmeter``."""


def register(sub) -> None:
    """Add the query side's subcommands to the ``govmeter`` parser."""

"""``govmeter replay``: every projection rebuilt from the event store into a fresh schema, and compared."""

"""Shared contracts of govmeter: event and API models, the meter catalogue, JSON Schema exports."""

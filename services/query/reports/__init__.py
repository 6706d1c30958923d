"""Finance and provider reports (Art. 10, 12, 19): utilisation, platform analysis, anomaly warnings, waste,
budget basis and the FOCUS export. Pure rules live in ``anomaly``, ``waste_rules`` and ``basis``; the routers
read PostgreSQL and render JSON, CSV or XLSX."""

"""Finance and provider reports (Art. 10, 12, 19), one router each: utilisation, platform analysis, anomaly
warnings, waste, budget basis and the FOCUS export. Each reads through ``services.query.views``, applies the
rules of ``services.query.domain`` and writes JSON, CSV or XLSX with ``services.query.formats``."""

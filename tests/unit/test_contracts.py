from schemas.catalogue import meters
from schemas.export import OUT, rendered


def test_exported_json_schemas_are_up_to_date():
    for filename, text in rendered().items():
        assert (OUT / filename).read_text(encoding="utf-8") == text, f"run: python -m schemas.export ({filename})"


def test_catalogue_covers_the_five_service_families_of_article_2():
    assert {m.family for m in meters().values()} == {"compute", "storage", "network", "bandwidth", "security"}
    assert meters()["storage.block"].attributes == {"tier": ["ssd", "hdd"]}

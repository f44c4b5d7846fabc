"""The suite's isolation: a test's changes to the test app's configuration and the caches it
filled from its rolled-back transaction do not reach the next test (tests/conftest.py)."""

from __future__ import annotations

from app.config import DEFAULTS
from app.services import coverage, tiles


def test_a_test_changes_the_config_and_fills_the_caches(app, client) -> None:  # type: ignore[no-untyped-def]
    app.config["ANON_PHOTO_LIMIT"] = 1
    app.config["SOMETHING_NEW"] = "set by a test"
    assert client.get("/tiles/grids/14/13528/6652.mvt").status_code == 200
    assert client.get("/api/coverage?level=3&area=0").status_code == 200
    assert tiles.CACHE.items and coverage.CACHE._models


def test_the_next_test_starts_from_the_saved_config_and_empty_caches(app, client) -> None:  # type: ignore[no-untyped-def]
    assert app.config["ANON_PHOTO_LIMIT"] == DEFAULTS["ANON_PHOTO_LIMIT"]
    assert "SOMETHING_NEW" not in app.config
    assert app.config["SESSION_IDLE_MINUTES"] == 600  # what the fixture set stays
    assert not tiles.CACHE.items and not coverage.CACHE._models

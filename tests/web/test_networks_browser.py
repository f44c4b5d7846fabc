"""The 多网合一 page and the e-map's network layer and print button, in a real browser."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

COMMUNITY = "340188001001"


@pytest.fixture()
def police_network(database_url: str):  # type: ignore[no-untyped-def]
    """A committed police network: copies of 爱辉社区's 网格 (each nests), removed afterwards."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        nid = conn.scalar(
            text(
                """INSERT INTO network (department_id, name, kind, grid_id)
                   SELECT d.id, '浏览器警务网格', 'police', g.id FROM department d, grid g
                   WHERE d.code = 'PCS-AH' AND g.code = '340188001' AND g.valid_to IS NULL RETURNING id"""
            )
        )
        n = conn.execute(
            text(
                """INSERT INTO network_grid (network_id, code, name, person_name, geom, area_m2)
                   SELECT :n, 'JW-' || g.code, '警务' || g.name, '民警甲', g.geom, g.area_m2
                   FROM grid g JOIN grid p ON p.id = g.parent_id
                   WHERE p.code = :c AND g.valid_to IS NULL"""
            ),
            {"n": nid, "c": COMMUNITY},
        ).rowcount
        # One more grid: the community's first 网格 moved 38 m east (crosses its neighbour).
        conn.execute(
            text(
                """INSERT INTO network_grid (network_id, code, name, geom, area_m2)
                   SELECT :n, 'JW-SHIFT', '偏移警务网格', ST_Translate(g.geom, 0.0004, 0), g.area_m2
                   FROM grid g WHERE g.code = '34018800100101' AND g.valid_to IS NULL"""
            ),
            {"n": nid},
        )
        n += 1
    try:
        yield nid, n
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM network WHERE id = :n"), {"n": nid})
        engine.dispose()


@pytest.mark.browser
def test_networks_page_and_emap_layer(live_server: str, page, police_network) -> None:  # type: ignore[no-untyped-def]
    nid, n = police_network
    page.goto(f"{live_server}/networks")
    page.select_option("#networks-select", str(nid))
    page.click("#networks-form button[type=submit]")
    page.wait_for_selector("html[data-networks-ready='2']", timeout=20000)
    assert page.locator("#networks-body tr").count() == n
    shifted = page.locator("#networks-body tr", has_text="JW-SHIFT")
    rows = page.locator("#networks-body tr").all_inner_texts()
    assert sum(r.rstrip().endswith("是") for r in rows) == n - 1, rows  # every copy nests cleanly
    # The shifted one gets an alignment proposal; committed, it nests.
    shifted.locator("button.networks-propose").click()
    page.wait_for_function(
        "() => document.getElementById('networks-proposal-text').textContent.includes('边界最大移动')"
    )
    assert "迁入" in page.inner_text("#networks-proposal-text")
    page.click("#networks-commit")
    page.wait_for_selector("html[data-networks-ready='3']", timeout=20000)
    assert (
        page.locator("#networks-body tr", has_text="JW-SHIFT").inner_text().rstrip().endswith("是")
    )
    assert page.locator("#networks-body button.networks-propose").count() == 0
    assert "安和派出所" in page.locator("#networks-depts-body").inner_text()
    assert page.get_attribute("#networks-csv", "href").endswith(
        f"/api/networks/{nid}/mismatch?format=csv&level=3"
    )

    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.select_option("#gg-networks-select", str(nid))
    page.wait_for_selector(f"html[data-networks-drawn='{n}']", timeout=20000)
    assert page.locator("#gg-print-map").count() == 1
    page.emulate_media(media="print")
    assert not page.locator("#gg-header").is_visible()
    assert page.locator("#gg-map").is_visible()


@pytest.mark.browser
def test_all_networks_are_drawn_from_vector_tiles(live_server: str, page, police_network) -> None:  # type: ignore[no-untyped-def]
    nid, n = police_network
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.select_option("#gg-networks-select", "all")
    page.wait_for_function(
        "() => GridGov.gl.getLayer('networks-line') && GridGov.gl.isSourceLoaded('networks')",
        timeout=20000,
    )
    page.evaluate("() => GridGov.tilesIdle()")
    codes = page.evaluate(
        """() => GridGov.gl.queryRenderedFeatures({ layers: ['networks-line'] })
                 .map(function (f) { return f.properties.code; })"""
    )
    assert "JW-SHIFT" in codes and any(c.startswith("JW-340188001001") for c in codes), codes
    page.select_option("#gg-networks-select", "")
    assert (
        page.evaluate("() => GridGov.gl.getLayoutProperty('networks-line', 'visibility')") == "none"
    )

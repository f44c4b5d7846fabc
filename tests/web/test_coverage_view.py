"""The e-map's coverage view (服务圈覆盖分析) in a real headless Chromium."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from sqlalchemy import create_engine, text


def api(live_server: str, path: str) -> dict:
    with urllib.request.urlopen(f"{live_server}{path}") as res:  # loopback only
        return json.loads(res.read())


def open_view(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.click("#gg-cov-toggle")
    page.wait_for_selector("html[data-coverage='ready']", timeout=30000)


# The legend of the coverage view: (lowest share, colour), written out here by hand.
LEGEND = [
    (0.95, "#1a9850"),
    (0.85, "#91cf60"),
    (0.70, "#fee08b"),
    (0.50, "#fc8d59"),
    (0.0, "#d73027"),
]


def legend_colour(share: float) -> str:
    return next(colour for low, colour in LEGEND if share >= low)


@pytest.mark.browser
def test_coverage_view_colours_grids_and_shows_uncovered(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    open_view(page, live_server)
    want = api(live_server, "/api/coverage?level=3&format=geojson")
    unc = api(live_server, "/api/coverage/uncovered")

    # Grids of level 3, each filled with the colour of its covered share.
    drawn = page.evaluate(
        """() => GridGov.coverage.groups.grids.getLayers().map(l => ({
              id: l.feature.properties.id, fill: l.options.fillColor,
              households: l.feature.properties.households, shown: GridGov.map.hasLayer(l)}))"""
    )
    assert len(drawn) == len(want["grids"]["features"]) > 30
    assert all(d["shown"] for d in drawn)
    # The colour of each grid from the API's share and the legend as the README gives it, not
    # from the page's own function.
    share = {
        f["properties"]["id"]: f["properties"]["households_covered_share"]
        for f in want["grids"]["features"]
    }
    for d in drawn:
        if d["households"] > 0:
            assert d["fill"] == legend_colour(share[d["id"]]), (d, share[d["id"]])
    assert len({d["fill"] for d in drawn}) >= 2  # the sample has well and poorly covered grids

    # The legend, in Chinese.
    legend = page.inner_text(".gg-cov-legend")
    for label in ("住户覆盖率", "≥ 95%", "< 50%", "无住户", "未覆盖住户", "未覆盖区域"):
        assert label in legend

    # Uncovered households: bare points with counts that add up, and nothing personal.
    tips = page.evaluate(
        """() => GridGov.coverage.groups.households.getLayers().map(l => l.getTooltip().getContent())"""
    )
    points = [f for f in unc["features"] if f["properties"]["layer"] == "households"]
    assert len(tips) == len(points) > 0
    counted = sum(int(re.search(r"(\d+) 户", t).group(1)) for t in tips)
    assert counted == unc["households_uncovered"]
    assert not any(re.search(r"1\d{10}", t) for t in tips)  # no phone numbers
    assert page.evaluate("() => GridGov.coverage.groups.area.getLayers().length") == 1
    circles = page.evaluate("() => GridGov.coverage.groups.circles.getLayers().length")
    assert circles == want["service_points"]

    # The summary shows the overall figures.
    summary = page.inner_text("#gg-cov-summary")
    t = want["totals"]
    assert f"{t['households_covered']:,}" in summary and f"{t['households']:,}" in summary

    # Clicking a grid gives its figures.
    grid = max(want["grids"]["features"], key=lambda f: f["properties"]["households_uncovered"])
    page.evaluate(
        """(id) => { const l = GridGov.coverage.groups.grids.getLayers()
                        .find(x => x.feature.properties.id === id);
                     l.fire('click', {latlng: l.getBounds().getCenter()}); }""",
        grid["id"],
    )
    panel = page.wait_for_selector(".gg-cov-figures", timeout=5000).inner_text()
    p = grid["properties"]
    assert p["name"] in panel and "服务圈覆盖" in panel
    assert f"{p['households_uncovered']:,} 户" in panel

    # The five-minute preset recomputes with 400 m circles.
    page.select_option("#gg-cov-radius", "five_minute_m")
    page.wait_for_function(
        "document.documentElement.getAttribute('data-coverage-loads') === '2'", timeout=30000
    )
    assert "400 米" in page.inner_text("#gg-cov-summary")
    five = api(live_server, "/api/coverage?level=3&radius_m=400")
    assert f"{five['totals']['households_covered']:,}" in page.inner_text("#gg-cov-summary")

    # Leaving the view removes its layers and brings back the base map's circles.
    page.click("#gg-cov-toggle")
    assert not page.evaluate("() => GridGov.map.hasLayer(GridGov.coverage.groups.grids)")
    assert page.evaluate("() => GridGov.map.hasLayer(GridGov.layers.service_circles)")


@pytest.mark.browser
def test_recommend_and_accept_a_site(live_server: str, page, database_url: str) -> None:  # type: ignore[no-untyped-def]
    open_view(page, live_server)
    page.select_option("#gg-cov-radius", "five_minute_m")
    page.wait_for_function(
        "document.documentElement.getAttribute('data-coverage-loads') === '2'", timeout=30000
    )
    page.fill("#gg-cov-k", "2")
    page.click("#gg-cov-recommend")
    page.wait_for_selector("html[data-coverage-recs='ready']", timeout=60000)
    recs = page.evaluate("() => GridGov.coverage.state.recs")
    assert len(recs["sites"]) == 2
    items = page.query_selector_all("#gg-cov-recs li")
    assert len(items) == 2
    first = recs["sites"][0]
    assert f"新增覆盖 {first['gain_households']:,} 户" in items[0].inner_text()
    markers = page.evaluate(
        """() => GridGov.coverage.groups.sites.getLayers()
              .filter(l => l.options.icon).map(l => l.getTooltip().getContent())"""
    )
    assert len(markers) == 2 and "推荐站点 1" in markers[0]
    assert "最优" in page.inner_text(".gg-cov-quality")

    engine = create_engine(database_url)
    accepted = None
    try:
        page.click("#gg-cov-recs li[data-rank='1'] .gg-cov-accept")
        page.wait_for_selector(".gg-cov-accepted", timeout=30000)
        accepted = int(page.get_attribute("html", "data-coverage-accepted"))
        page.wait_for_function(
            "document.documentElement.getAttribute('data-coverage-loads') === '3'", timeout=30000
        )
        with engine.connect() as conn:
            status = conn.execute(
                text("SELECT status FROM service_point WHERE id = :id"), {"id": accepted}
            ).scalar()
        assert status == "planned"
        # The view now counts planned points: the site's households are covered.
        assert page.is_checked("#gg-cov-planned")
        after = api(live_server, "/api/coverage?level=3&radius_m=400&include_planned=1&area=0")
        assert after["totals"]["households_covered"] == (
            recs["households_covered_before"] + first["gain_households"]
        )
        assert f"{after['totals']['households_covered']:,}" in page.inner_text("#gg-cov-summary")
        planned = page.evaluate(
            """() => GridGov.coverage.groups.circles.getLayers()
                  .filter(l => l.feature.properties.status === 'planned').length"""
        )
        assert planned == 1
    finally:
        if accepted is not None:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM service_point WHERE id = :id"), {"id": accepted})
        engine.dispose()

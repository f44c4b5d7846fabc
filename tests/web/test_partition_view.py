"""The e-map's automatic division (自动划分网格) in a real headless Chromium."""

from __future__ import annotations

import json
import urllib.request

import pytest
from sqlalchemy import create_engine, text

from tests.web.emap_page import rendered_grids


def api(live_server: str, path: str) -> dict:
    with urllib.request.urlopen(f"{live_server}{path}") as res:  # loopback only
        return json.loads(res.read())


def open_view(page, live_server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server}/emap")
    page.wait_for_selector("html[data-emap-ready='1']", timeout=20000)
    page.click("#gg-part-toggle")
    page.wait_for_selector("html[data-partition='ready']", timeout=10000)


def choose(page, grid_id: int) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("(id) => GridGov.partition.select(id)", grid_id)
    page.wait_for_selector("html[data-partition='selected']", timeout=10000)


def wait(page, state: str) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector(f"html[data-partition='{state}']", timeout=30000)


@pytest.mark.browser
def test_propose_a_division_and_try_another_seed(live_server: str, page) -> None:  # type: ignore[no-untyped-def]
    open_view(page, live_server)
    grid = next(
        f
        for f in api(live_server, "/api/grids?level=3")["features"]
        if f["properties"]["code"].startswith("340188001")
    )
    choose(page, grid["id"])
    assert grid["properties"]["name"] in page.inner_text("#gg-part-grid")

    page.select_option("#gg-part-mode", "size_range")
    page.click("#gg-part-propose")
    wait(page, "proposed")
    drawn = page.evaluate(
        """() => GridGov.partition.drawn.getLayers().map(l => ({
              households: l.feature.properties.households,
              label: l.getTooltip().getContent(), shown: GridGov.map.hasLayer(l)}))"""
    )
    report = page.inner_text(".gg-part-report")
    for label in ("最大偏差", "变异系数", "紧凑度", "地域相连", "无缝拼合", "沿道路边界", "户数"):
        assert label in report
    assert "是，每块为一个整体" in report and "是（无缝隙、无重叠）" in report
    total = grid["properties"]["household_count"]
    assert sum(d["households"] for d in drawn) == total
    assert all(d["shown"] and "户" in d["label"] for d in drawn)
    assert all(50 <= total / len(drawn) <= 80 for _ in drawn)
    rows = page.locator(".gg-part-table tbody tr").count()
    assert rows == len(drawn)

    # Another seed: the seed box counts on and a new proposal replaces the old one.
    first = [d["households"] for d in drawn]
    page.click("#gg-part-next")
    wait(page, "proposed")
    assert page.input_value("#gg-part-seed") == "1"
    again = page.evaluate(
        "() => GridGov.partition.drawn.getLayers().map(l => l.feature.properties.households)"
    )
    assert sum(again) == total and len(again) == len(first)
    page.screenshot(path="var/partition_view.png")

    # A request for more parts than one division makes, or than the grid has buildings, says
    # why, in the panel.
    page.select_option("#gg-part-mode", "k")
    page.fill("#gg-part-k", "100000")
    page.click("#gg-part-propose")
    wait(page, "error")
    assert "超出范围 1–200" in page.inner_text("#gg-part-status")
    page.fill("#gg-part-k", "200")
    page.click("#gg-part-propose")
    page.wait_for_function(
        "() => document.querySelector('#gg-part-status').textContent.includes('分成 200 份')"
    )
    assert "无法把" in page.inner_text("#gg-part-status")


@pytest.mark.browser
def test_cut_patches_with_party_members_and_commit(
    live_server: str, page, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    micro = next(
        f
        for f in api(live_server, "/api/grids?level=4")["features"]
        if f["properties"]["code"].startswith("340188101")
    )
    mid = micro["id"]
    with engine.connect() as conn:
        subtree = (
            conn.execute(
                text(
                    "SELECT id FROM grid WHERE (id = :id OR parent_id = :id) AND valid_to IS NULL"
                ),
                {"id": mid},
            )
            .scalars()
            .all()
        )
        saved = conn.execute(
            text("SELECT id, grid_id, linked_member_id FROM household WHERE grid_id = ANY(:ids)"),
            {"ids": list(subtree)},
        ).all()
        members = (
            conn.execute(
                text(
                    "SELECT DISTINCT a.worker_id FROM grid_assignment a JOIN grid g ON g.id = a.grid_id"
                    " WHERE a.role = 'party_member' AND g.parent_id = :id ORDER BY 1"
                ),
                {"id": mid},
            )
            .scalars()
            .all()
        )
    created: list[int] = []
    try:
        open_view(page, live_server)
        choose(page, mid)
        assert page.is_visible("#gg-part-patches")
        # The micro-grid's party members are offered by name, all ticked: keep only the patches'.
        page.wait_for_selector("#gg-part-members input", state="attached", timeout=10000)
        offered = page.eval_on_selector_all(
            "#gg-part-members input", "els => els.map(e => Number(e.value))"
        )
        assert set(members) <= set(offered)
        names = page.inner_text("#gg-part-members")
        assert "（" in names and not any(str(m) == names.strip() for m in members)  # names, not ids
        for wid in offered:
            (page.check if wid in members else page.uncheck)(
                f"#gg-part-members input[value='{wid}']"
            )
        page.click("#gg-part-patches")
        wait(page, "proposed")
        labels = page.evaluate(
            "() => GridGov.partition.drawn.getLayers().map(l => l.getTooltip().getContent())"
        )
        assert labels and all("户" in t for t in labels)
        assert "党员联户" in page.inner_text(".gg-part-report")
        counts = page.evaluate(
            "() => GridGov.partition.drawn.getLayers().map(l => l.feature.properties.households)"
        )
        assert all(5 <= c <= 10 for c in counts)
        # The micro-grid already has patches drawn by hand: replacing them must be ticked.
        assert page.is_visible("#gg-part-replace-label")
        page.check("#gg-part-replace")
        page.click("#gg-part-commit")
        wait(page, "committed")
        assert "已提交" in page.inner_text("#gg-part-status")
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT g.id, g.code, g.level, g.household_count FROM grid g"
                    " WHERE g.parent_id = :id AND g.valid_to IS NULL ORDER BY g.code"
                ),
                {"id": mid},
            ).all()
        created = [r.id for r in rows]
        assert [r.household_count for r in rows] == counts
        assert all(r.level == 5 and r.code.startswith(micro["properties"]["code"]) for r in rows)
        # The new patches are on the map, the replaced ones are gone.
        on_map = rendered_grids(page, 5)
        assert set(created) <= set(on_map)
        replaced = set(subtree) - {mid}
        assert replaced and not replaced & set(on_map)
    finally:
        with engine.begin() as conn:
            if created:
                conn.execute(
                    text("DELETE FROM grid_assignment WHERE grid_id = ANY(:ids)"), {"ids": created}
                )
            for hid, gid, linked in saved:
                conn.execute(
                    text("UPDATE household SET grid_id = :g, linked_member_id = :m WHERE id = :id"),
                    {"g": gid, "m": linked, "id": hid},
                )
            for kind in ("camera", "service_point", '"case"'):
                conn.execute(
                    text(f"UPDATE {kind} SET grid_id = :mid WHERE grid_id = ANY(:ids)"),
                    {"mid": mid, "ids": created or [-1]},
                )
            if created:
                conn.execute(text("DELETE FROM grid WHERE id = ANY(:ids)"), {"ids": created})
            conn.execute(
                text("UPDATE grid SET valid_to = NULL WHERE id = ANY(:ids)"), {"ids": list(subtree)}
            )
        engine.dispose()

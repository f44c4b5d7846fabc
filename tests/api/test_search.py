"""The search box: what each role finds by address, name, code, and what it never finds."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import text

from tests.accounts import bearer
from tests.api.case_helpers import report

OWN_ADDRESS_GRID = "3401880010010101"  # 爱辉社区第一网格第1微网格: every test account's
OTHER_GRID = "34018810120101"  # 桃园村 of 青山镇: nobody's but the administrator's


def search(client, q: str, headers=None, **params):  # type: ignore[no-untyped-def]
    extra = "".join(f"&{k}={v}" for k, v in params.items())
    res = client.get(f"/api/search?q={quote(q)}{extra}", headers=headers or {})
    assert res.status_code == 200, res.get_json()
    return res.get_json()["items"]


def exact(items, label: str) -> list[int]:  # type: ignore[no-untyped-def]
    """The households of the suggestions that carry exactly this address, ranked first."""
    assert items and items[0]["label"] == label, items[:1]
    return [i["id"] for i in items if i["kind"] == "household" and i["label"] == label]


def household_in(db_session, grid_code: str):  # type: ignore[no-untyped-def]
    return db_session.execute(
        text(
            """SELECT h.id, h.address, h.head_name, h.linked_member_id FROM household h
               JOIN grid g ON g.id = h.grid_id WHERE g.code LIKE :c || '%' ORDER BY h.id LIMIT 1"""
        ),
        {"c": grid_code},
    ).one()


def test_a_household_is_found_by_its_address_and_by_a_typo_with_the_name_masked(client, db_session):
    hh = household_in(db_session, OWN_ADDRESS_GRID)
    items = search(client, hh.address)
    top = items[0]
    assert (top["kind"], top["id"]) == ("household", hh.id)
    assert top["label"] == hh.address
    assert top["open"] == {"household": hh.id}
    assert -180 <= top["lon"] <= 180 and -90 <= top["lat"] <= 90
    # The head's name never appears whole; its masked form does.
    text_shown = " ".join(str(v) for i in items for v in (i["label"], i["detail"]))
    assert hh.head_name not in text_shown
    assert hh.head_name[0] + "*" in top["detail"]
    # One character changed in the estate's name (e.g. 馨苑 -> 馨园): still among the suggestions.
    short = hh.address.split("社区", 1)[1]  # without street and community
    typo = short[0] + "园" + short[2:] if short[1] != "园" else short[0] + "苑" + short[2:]
    ids = [i["id"] for i in search(client, typo, limit=30) if i["kind"] == "household"]
    assert ids, f"nothing found for {typo}"
    found = (
        db_session.execute(text("SELECT address FROM household WHERE id = ANY(:ids)"), {"ids": ids})
        .scalars()
        .all()
    )
    assert all(a.endswith(short[3:]) for a in found)  # the same building, unit and room


def test_a_worker_and_a_grid_are_found_by_name_and_code(client, db_session):
    w = db_session.execute(text("SELECT id, code, name FROM worker WHERE code = 'W00005'")).one()
    by_name = search(client, w.name, kinds="worker")
    assert by_name[0]["id"] == w.id and by_name[0]["label"] == w.name
    assert by_name[0]["open"]["worker"] == w.id and by_name[0]["grid_id"]
    by_code = search(client, w.code)
    assert by_code[0]["kind"] == "worker" and by_code[0]["id"] == w.id
    grid = db_session.execute(
        text("SELECT id, name FROM grid WHERE code = :c AND valid_to IS NULL"),
        {"c": OWN_ADDRESS_GRID},
    ).one()
    for q in (grid.name, OWN_ADDRESS_GRID):
        top = search(client, q)[0]
        assert (top["kind"], top["id"], top["open"]) == ("grid", grid.id, {"grid": grid.id})


def test_a_case_is_found_by_its_code_and_only_by_those_who_see_it(client, db_session, accounts):
    case = report(client, description="搜索测试")["case"]
    tail = case["code"][-6:]
    items = search(client, case["code"])
    assert items[0]["kind"] == "case" and items[0]["id"] == case["id"]
    assert items[0]["open"] == {"case": case["id"]}
    assert case["id"] in [i["id"] for i in search(client, tail, kinds="case", limit=30)]
    # The micro-grid's worker sees it; the department (not escalated to it) does not.
    mine = search(client, case["code"], headers=bearer(accounts["worker"]), kinds="case")
    assert [i["id"] for i in mine] == [case["id"]]
    assert search(client, case["code"], headers=bearer(accounts["department"])) == []


def test_search_keeps_to_the_callers_grids(client, db_session, accounts):
    other = household_in(db_session, OTHER_GRID)
    own = household_in(db_session, OWN_ADDRESS_GRID)
    # The administrator finds both; a worker of 爱辉 only its own.
    assert other.id in exact(search(client, other.address, limit=30), other.address)
    worker = bearer(accounts["worker"])
    assert other.id not in [
        i["id"] for i in search(client, other.address, headers=worker) if i["kind"] == "household"
    ]
    assert own.id in exact(search(client, own.address, headers=worker, limit=30), own.address)
    # A grid of 青山镇 and its workers: not among the worker's suggestions either.
    qs_grid = db_session.execute(
        text("SELECT name FROM grid WHERE code = :c"), {"c": OTHER_GRID}
    ).scalar_one()
    assert all(
        i["kind"] != "grid" or i["label"] != qs_grid
        for i in search(client, qs_grid, headers=worker)
    )
    # A party member finds the households linked to him, not his neighbours'.
    member = accounts["party_member"]
    linked = db_session.execute(
        text("SELECT id, address FROM household WHERE linked_member_id = :m ORDER BY id LIMIT 1"),
        {"m": member.worker_id},
    ).one()
    unlinked = db_session.execute(
        text(
            """SELECT h.id, h.address FROM household h JOIN grid g ON g.id = h.grid_id
               WHERE g.code = :c AND h.linked_member_id IS DISTINCT FROM :m ORDER BY h.id LIMIT 1"""
        ),
        {"c": OWN_ADDRESS_GRID, "m": member.worker_id},
    ).one()
    pm = bearer(member)
    assert linked.id in exact(search(client, linked.address, headers=pm, limit=30), linked.address)
    assert unlinked.id not in [
        i["id"]
        for i in search(client, unlinked.address, headers=pm, limit=30)
        if i["kind"] == "household"
    ]
    # The department answers for no grid: no household, grid or worker.
    dept = search(client, own.address, headers=bearer(accounts["department"]))
    assert [i for i in dept if i["kind"] in ("household", "grid", "worker")] == []


def test_places_are_found_and_bad_queries_refused_in_chinese(client, db_session):
    cam = db_session.execute(text("SELECT id, code FROM camera ORDER BY code LIMIT 1")).one()
    assert search(client, cam.code)[0]["id"] == cam.id
    sp = db_session.execute(text("SELECT id, name FROM service_point ORDER BY id LIMIT 1")).one()
    top = search(client, sp.name)[0]
    assert (top["kind"], top["id"]) == ("service_point", sp.id)
    for q in ("", "a", "x" * 61):
        res = client.get(f"/api/search?q={q}")
        assert res.status_code == 400
        assert "字" in res.get_json()["error"]["message"]
    assert client.get("/api/search?q=%E7%88%B1%00%E8%BE%89").status_code == 400
    assert client.get("/api/search?q=%E7%88%B1%E8%BE%89&limit=0").status_code == 400
    assert client.get("/api/search?q=%E7%88%B1%E8%BE%89&kinds=people").status_code == 400
    # Wildcards are text, not patterns.
    assert search(client, "%%%") == [] and search(client, "__") == []


def test_a_misspelt_building_is_found_through_the_places_the_households_keep(
    client, db_session, accounts
):
    """A building name with one character wrong and no unit or room (too unlike any whole
    address to be suggested by the address's similarity alone) finds the building, within the
    caller's grids; the places follow the households when they move or go."""
    own = db_session.scalar(text("SELECT id FROM grid WHERE code = :c"), {"c": OWN_ADDRESS_GRID})
    other = db_session.scalar(
        text("SELECT id FROM grid WHERE code LIKE :c || '%' AND level = 4 LIMIT 1"),
        {"c": OTHER_GRID},
    )
    address = "安和街道爱辉社区翠柏华庭花苑7栋2单元301室"
    hid = db_session.scalar(
        text(
            """INSERT INTO household (geom, building, unit, room, address, people, grid_id)
               VALUES (ST_SetSRID(ST_MakePoint(117.2287, 31.8149), 4326), '翠柏华庭花苑7栋', '2', '301',
                       :a, 2, :g) RETURNING id"""
        ),
        {"a": address, "g": own},
    )
    place = "安和街道爱辉社区翠柏华庭花苑7栋"

    def places() -> list[tuple[int, int]]:
        return [
            tuple(r)
            for r in db_session.execute(
                text("SELECT grid_id, households FROM search_place WHERE place = :p"), {"p": place}
            )
        ]

    assert places() == [(own, 1)]
    worker = bearer(accounts["worker"])
    for q in ("翠柏华廷花苑7栋", "翠柏华廷花苑7栋2单元301室"):
        items = [i for i in search(client, q, headers=worker) if i["kind"] == "household"]
        assert items and (items[0]["id"], items[0]["label"]) == (hid, address), (q, items[:2])
    # Another unit and room of the building: not this household.
    assert hid not in [i["id"] for i in search(client, "翠柏华廷花苑7栋3单元101室", headers=worker)]
    # Moved to a grid of 青山镇: the worker of 爱辉 no longer finds it, the administrator does.
    db_session.execute(
        text("UPDATE household SET grid_id = :g WHERE id = :h"), {"g": other, "h": hid}
    )
    assert places() == [(other, 1)]
    assert hid not in [i["id"] for i in search(client, "翠柏华廷花苑7栋", headers=worker)]
    assert search(client, "翠柏华廷花苑7栋")[0]["id"] == hid
    db_session.execute(text("DELETE FROM household WHERE id = :h"), {"h": hid})
    assert places() == []
    assert hid not in [i["id"] for i in search(client, "翠柏华廷花苑7栋")]


def test_a_misspelt_estate_is_found_through_the_terms_the_places_keep(client, db_session, accounts):
    """The terms (a place without its building number) follow the places: a new estate's
    term appears with its households and goes with the last of them, always equal to a count
    over the places; an estate's name with one character wrong finds the building, unit and
    room asked for, not another building of the estate."""

    def recount_differs() -> list:
        return db_session.execute(
            text(
                """(SELECT household_search_term(place), count(*)::integer FROM search_place
                    GROUP BY 1 EXCEPT SELECT term, places FROM search_term)
                   UNION ALL (SELECT term, places FROM search_term EXCEPT
                    SELECT household_search_term(place), count(*)::integer FROM search_place
                    GROUP BY 1)"""
            )
        ).all()

    assert recount_differs() == []
    own = db_session.scalar(text("SELECT id FROM grid WHERE code = :c"), {"c": OWN_ADDRESS_GRID})
    term = "安和街道爱辉社区锦绣澜湾小区"
    ids = {}
    for building in ("3", "4"):
        ids[building] = db_session.scalar(
            text(
                """INSERT INTO household (geom, address, people, grid_id)
                   VALUES (ST_SetSRID(ST_MakePoint(117.2287, 31.8149), 4326), :a, 2, :g)
                   RETURNING id"""
            ),
            {"a": f"{term}{building}栋1单元101室", "g": own},
        )
    places = db_session.scalar(text("SELECT places FROM search_term WHERE term = :t"), {"t": term})
    assert places == 2 and recount_differs() == []
    worker = bearer(accounts["worker"])
    for q, building in (("锦绣兰湾小区3栋1单元101室", "3"), ("锦绣兰湾小区4栋", "4")):
        items = [i for i in search(client, q, headers=worker) if i["kind"] == "household"]
        assert items and items[0]["id"] == ids[building], (q, items[:2])
        assert items[0]["label"].startswith(f"{term}{building}栋")
    db_session.execute(
        text("DELETE FROM household WHERE id = ANY(:ids)"), {"ids": list(ids.values())}
    )
    assert (
        db_session.scalar(text("SELECT count(*) FROM search_term WHERE term = :t"), {"t": term})
        == 0
    )
    assert recount_differs() == []


def test_a_bare_number_or_two_characters_find_codes_and_equal_names_only(client, db_session):
    """A room number is in too many addresses to say which is meant, and two characters
    resemble everything: neither lists households; a worker's number typed without its
    letters, and a name typed whole, are still found."""
    hh = household_in(db_session, OWN_ADDRESS_GRID)
    room = db_session.scalar(text("SELECT substring(:a from '([0-9]+)室$')"), {"a": hh.address})
    assert room and len(room) >= 3
    assert [i for i in search(client, room, limit=30) if i["kind"] == "household"] == []
    short = hh.address.split("社区", 1)[1][:2]
    assert [i for i in search(client, short, limit=30) if i["kind"] == "household"] == []
    worker = db_session.execute(
        text(
            """SELECT w.id, w.code, w.name FROM worker w
               WHERE w.code ~ '[A-Za-z]' AND w.code ~ '[0-9]{3}'
                 AND EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id)
               ORDER BY w.id LIMIT 1"""
        )
    ).one()
    digits = "".join(ch for ch in worker.code if ch.isdigit())
    assert worker.id in [i["id"] for i in search(client, digits, limit=30) if i["kind"] == "worker"]
    assert worker.id in [i["id"] for i in search(client, worker.name) if i["kind"] == "worker"]

"""Points ledgers: the versioned rulebook, a member's entry through its two-step review, who sees
which ledger, households' points and exchanges that never overdraw (also when two arrive at
once), and the quarterly ranking recomputed independently with plain SQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.api.test_grid_edit_concurrency import call
from tests.auth.conftest import bearer

QUARTER, Q_START, Q_END = "2026Q4", "2026-10-01", "2027-01-01"
OTHER_LEAF = "34018810120101"  # 桃园村: in nobody's grids but the administrator's


def _as(app, account):  # type: ignore[no-untyped-def]
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = bearer(account)["Authorization"]
    return c


def _other_member(db_session) -> int:  # type: ignore[no-untyped-def]
    """A party member outside every test account's grids."""
    db_session.execute(text("INSERT INTO worker (code, name) VALUES ('PT-OTHER', '外村党员')"))
    db_session.execute(
        text(
            """INSERT INTO grid_assignment (worker_id, grid_id, role)
               SELECT w.id, g.id, 'party_member' FROM worker w, grid g
                WHERE w.code = 'PT-OTHER' AND g.code = :c AND g.valid_to IS NULL"""
        ),
        {"c": OTHER_LEAF},
    )
    return db_session.scalar(text("SELECT id FROM worker WHERE code = 'PT-OTHER'"))


def _own_household(db_session, accounts) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(
        text(
            """SELECT h.id FROM household h JOIN grid_assignment a ON a.grid_id = h.grid_id
                WHERE a.worker_id = :w AND a.role = 'party_member' ORDER BY h.id LIMIT 1"""
        ),
        {"w": accounts["party_member"].worker_id},
    )


def _other_household(db_session) -> int:  # type: ignore[no-untyped-def]
    return db_session.scalar(
        text(
            "SELECT h.id FROM household h JOIN grid g ON g.id = h.grid_id WHERE g.code = :c ORDER BY h.id LIMIT 1"
        ),
        {"c": OTHER_LEAF},
    )


def _propose(app, accounts, role: str, rule: str, day: str, member: int | None = None) -> Any:  # type: ignore[no-untyped-def]
    body = {
        "member_id": member or accounts["party_member"].worker_id,
        "rule_code": rule,
        "occurred_on": day,
        "note": "带动联系户参加清淤",
    }
    return _as(app, accounts[role]).post("/api/points/entries", json=body)


def _approve(app, accounts, entry_id: int) -> None:  # type: ignore[no-untyped-def]
    for role in ("micro_chief", "centre"):
        res = _as(app, accounts[role]).post(
            f"/api/points/entries/{entry_id}/review", json={"decision": "approve", "note": "属实"}
        )
        assert res.status_code == 200, res.get_json()


def test_a_changed_rule_applies_from_its_date_and_old_entries_keep_their_version(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    res = client.post(
        "/api/points/rules",
        json={
            "code": "T-QX",
            "name": "清淤志愿",
            "kind": "奖励分",
            "points": 4,
            "valid_from": "2026-10-01",
        },
    )
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["rule"]["version"] == 1
    old = _propose(app, accounts, "party_member", "T-QX", "2026-10-15")
    assert old.status_code == 201, old.get_json()
    changed = _as(app, accounts["centre"]).post(
        "/api/points/rules", json={"code": "T-QX", "points": 6, "valid_from": "2026-11-01"}
    )
    assert changed.status_code == 201, changed.get_json()
    assert (
        changed.get_json()["rule"]["version"] == 2
        and changed.get_json()["rule"]["name"] == "清淤志愿"
    )
    new = _propose(app, accounts, "party_member", "T-QX", "2026-11-10")
    before = _propose(app, accounts, "party_member", "T-QX", "2026-10-20")
    assert (new.get_json()["entry"]["points"], new.get_json()["entry"]["rule"]["version"]) == (6, 2)
    assert (
        before.get_json()["entry"]["points"],
        before.get_json()["entry"]["rule"]["version"],
    ) == (4, 1)
    ledger = client.get(f"/api/points/members/{accounts['party_member'].worker_id}").get_json()
    kept = next(e for e in ledger["entries"] if e["id"] == old.get_json()["entry"]["id"])
    assert (kept["points"], kept["rule"]["version"]) == (4, 1)
    rules = client.get("/api/points/rules?subject=member").get_json()["rules"]
    assert [(r["version"], r["points"]) for r in rules if r["code"] == "T-QX"] == [(1, 4), (2, 6)]
    # refusals name the field, in Chinese
    for body, status, param in (
        ({"code": "T-FM", "name": "处分", "kind": "负面分", "points": 5}, 422, "points"),
        ({"code": "T-QX", "points": 7, "valid_from": "2026-10-05"}, 422, "valid_from"),
        ({"code": "T-XX", "name": "x", "kind": "加分", "points": 1}, 400, "kind"),
        ({"code": "T-XX", "name": "x", "kind": "奖励分", "points": "1"}, 400, "points"),
    ):
        res = client.post("/api/points/rules", json=body)
        assert res.status_code == status, (body, res.get_json())
        assert res.get_json()["error"]["param"] == param
    assert (
        _as(app, accounts["micro_chief"])
        .post("/api/points/rules", json={"code": "T-1", "name": "x", "kind": "奖励分", "points": 1})
        .status_code
        == 403
    )
    early = _propose(app, accounts, "party_member", "T-QX", "2026-09-01")
    assert early.status_code == 422 and "尚未生效" in early.get_json()["error"]["message"]


def test_an_entry_counts_only_after_a_chief_and_then_the_centre_approve(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    member = accounts["party_member"].worker_id
    audit_before = db_session.scalar(
        text("SELECT count(*) FROM audit_log WHERE action LIKE '%points_api.%'")
    )
    res = _propose(app, accounts, "party_member", "DY-LZ-01", "2026-11-02")
    assert res.status_code == 201, res.get_json()
    entry = res.get_json()["entry"]
    assert (
        entry["status"] == "proposed"
        and entry["points"] == 5
        and entry["proposed"]["by"] == accounts["party_member"].username
    )
    review = f"/api/points/entries/{entry['id']}/review"
    ledger = f"/api/points/members/{member}"
    # the centre may not take the chief's step; a member may not review
    res = _as(app, accounts["centre"]).post(review, json={"decision": "approve"})
    assert res.status_code == 409 and "网格长" in res.get_json()["error"]["message"]
    assert (
        _as(app, accounts["party_member"]).post(review, json={"decision": "approve"}).status_code
        == 403
    )
    res = _as(app, accounts["micro_chief"]).post(
        review, json={"decision": "approve", "note": "属实"}
    )
    assert res.status_code == 200 and res.get_json()["entry"]["status"] == "chief_approved"
    assert _as(app, accounts["party_member"]).get(ledger).get_json()["total"] == 0
    res = _as(app, accounts["grid_chief"]).post(review, json={"decision": "approve"})
    assert res.status_code == 409
    res = _as(app, accounts["centre"]).post(review, json={"decision": "approve", "note": "同意"})
    assert res.status_code == 200, res.get_json()
    done = res.get_json()["entry"]
    assert done["status"] == "approved"
    assert done["chief_review"]["by"] == accounts["micro_chief"].username
    assert done["centre_review"]["by"] == accounts["centre"].username
    assert len(done["centre_review"]["at"]) == 16 and done["centre_review"]["at"][10] == " "
    assert (
        _as(app, accounts["centre"])
        .post(review, json={"decision": "reject", "note": "x"})
        .status_code
        == 409
    )
    # a rejected entry never counts; a rejection needs a reason
    other = _propose(app, accounts, "micro_chief", "DY-FM-02", "2026-11-03").get_json()["entry"]
    bad = _as(app, accounts["micro_chief"]).post(
        f"/api/points/entries/{other['id']}/review", json={"decision": "reject"}
    )
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "note"
    res = _as(app, accounts["micro_chief"]).post(
        f"/api/points/entries/{other['id']}/review", json={"decision": "reject", "note": "不属实"}
    )
    assert res.get_json()["entry"]["status"] == "rejected"
    mine = _as(app, accounts["party_member"]).get(ledger).get_json()
    assert mine["total"] == 5 and mine["by_kind"] == {"履职分": 5, "奖励分": 0, "负面分": 0}
    assert mine["total"] == db_session.scalar(
        text(
            "SELECT COALESCE(SUM(r.points), 0) FROM point_entry e JOIN point_rule r ON r.id = e.rule_id"
            " WHERE e.member_id = :m AND e.status = 'approved'"
        ),
        {"m": member},
    )
    audit_after = db_session.scalar(
        text("SELECT count(*) FROM audit_log WHERE action LIKE '%points_api.%'")
    )
    assert audit_after - audit_before == 5  # two proposals, three reviews that took effect


def test_who_sees_a_members_ledger_and_who_may_propose(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    own, other = accounts["party_member"].worker_id, _other_member(db_session)
    for role, want_own, want_other in (
        ("admin", 200, 200),
        ("centre", 200, 404),
        ("grid_chief", 200, 404),
        ("micro_chief", 200, 404),
        ("party_member", 200, 404),
        ("worker", 404, 404),
        ("department", 403, 403),
    ):
        for member, want in ((own, want_own), (other, want_other)):
            res = _as(app, accounts[role]).get(f"/api/points/members/{member}")
            assert res.status_code == want, (role, member, res.get_json())
            if want != 200:
                assert "外村党员" not in res.get_data(as_text=True)
    assert app.test_client().get(f"/api/points/members/{own}").status_code == 401
    # a member proposes for themself only; a chief only for members of their grids
    assert (
        _propose(app, accounts, "party_member", "DY-JL-02", "2026-11-01", member=other).status_code
        == 404
    )
    assert (
        _propose(app, accounts, "grid_chief", "DY-JL-02", "2026-11-01", member=other).status_code
        == 404
    )
    assert _propose(app, accounts, "worker", "DY-JL-02", "2026-11-01").status_code == 403
    assert (
        _propose(app, accounts, "grid_chief", "HH-JL-01", "2026-11-01").status_code == 422
    )  # a household rule
    entry = client.get(f"/api/points/members/{own}").get_json()
    assert entry["member"]["id"] == own


def test_household_points_and_an_exchange_that_would_overdraw_is_refused(
    app, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    hid, far = _own_household(db_session, accounts), _other_household(db_session)
    chief = _as(app, accounts["micro_chief"])
    for _ in range(2):
        res = chief.post(
            f"/api/points/households/{hid}/entries",
            json={"rule_code": "HH-JL-01", "note": "义务劳动"},
        )
        assert res.status_code == 201, res.get_json()
    assert res.get_json()["entry"]["balance"] == 6
    res = _as(app, accounts["centre"]).post(
        f"/api/points/households/{hid}/exchange", json={"points": 4, "item": "洗衣液一瓶"}
    )
    assert res.status_code == 201 and res.get_json()["exchange"]["balance"] == 2
    res = chief.post(
        f"/api/points/households/{hid}/exchange", json={"points": 3, "item": "大米一袋"}
    )
    assert res.status_code == 409 and "余额不足" in res.get_json()["error"]["message"]
    for bad in ({"points": 0, "item": "x"}, {"points": 2}, {"points": "2", "item": "x"}):
        assert chief.post(f"/api/points/households/{hid}/exchange", json=bad).status_code == 400
    ledger = _as(app, accounts["party_member"]).get(f"/api/points/households/{hid}")
    assert ledger.status_code == 200, ledger.get_json()
    body = ledger.get_json()
    assert (body["earned"], body["spent"], body["balance"]) == (6, 4, 2)
    assert [x["item"] for x in body["exchanges"]] == ["洗衣液一瓶"]
    # outside one's grids: not found; a member or worker gives no points; departments see nothing
    assert (
        chief.post(
            f"/api/points/households/{far}/entries", json={"rule_code": "HH-JL-01"}
        ).status_code
        == 404
    )
    assert (
        chief.post(
            f"/api/points/households/{far}/exchange", json={"points": 1, "item": "x"}
        ).status_code
        == 404
    )
    assert (
        _as(app, accounts["party_member"])
        .post(f"/api/points/households/{hid}/entries", json={"rule_code": "HH-JL-01"})
        .status_code
        == 403
    )
    assert _as(app, accounts["department"]).get(f"/api/points/households/{hid}").status_code == 403
    assert (
        chief.post(
            f"/api/points/households/{hid}/entries", json={"rule_code": "DY-LZ-01"}
        ).status_code
        == 422
    )
    assert (
        db_session.scalar(
            text(
                "SELECT count(*) FROM audit_log WHERE action LIKE '%points_api.exchange' AND object_id = :h"
            ),
            {"h": str(hid)},
        )
        >= 1
    )


def test_two_exchanges_at_once_never_overdraw(live_server, database_url, accounts) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        hid = conn.scalar(
            text(
                "SELECT h.id FROM household h JOIN grid g ON g.id = h.grid_id WHERE g.code = '3401880010010101' ORDER BY h.id DESC LIMIT 1"
            )
        )
    headers = bearer(accounts["centre"])
    path = f"/api/points/households/{hid}/exchange"
    try:
        for _ in range(6):
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM point_exchange WHERE household_id = :h"), {"h": hid})
                conn.execute(
                    text("DELETE FROM household_point_entry WHERE household_id = :h"), {"h": hid}
                )
                conn.execute(
                    text(
                        "INSERT INTO household_point_entry (household_id, rule_id, occurred_on) "
                        "SELECT :h, id, DATE '2026-11-01' FROM point_rule WHERE code IN ('HH-JL-01', 'HH-JL-02') AND version = 1"
                    ),
                    {"h": hid},
                )  # 3 + 2 = 5 points
            barrier = threading.Barrier(2)
            answers: list[Any] = [None, None]

            def spend(
                i: int, barrier: threading.Barrier = barrier, answers: list[Any] = answers
            ) -> None:
                barrier.wait()
                answers[i] = call(
                    live_server, "POST", path, {"points": 3, "item": f"抢兑{i}"}, **headers
                )

            threads = [threading.Thread(target=spend, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sorted(a[0] for a in answers) == [201, 409], answers
            with engine.connect() as conn:
                balance = conn.scalar(
                    text(
                        "SELECT (SELECT SUM(r.points) FROM household_point_entry e JOIN point_rule r ON r.id = e.rule_id"
                        " WHERE e.household_id = :h) - (SELECT COALESCE(SUM(points), 0) FROM point_exchange WHERE household_id = :h)"
                    ),
                    {"h": hid},
                )
            assert balance == 2
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM point_exchange WHERE household_id = :h"), {"h": hid})
            conn.execute(
                text("DELETE FROM household_point_entry WHERE household_id = :h"), {"h": hid}
            )
        engine.dispose()


def _expected(db_session, group: str, scope: list[int] | None) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """(id, total, rank) straight from the tables, ranked here."""
    within = "TRUE" if scope is None else "{col} = ANY(:scope)"
    if group == "member":
        sql = f"""SELECT w.id, (SELECT COALESCE(SUM(r.points), 0) FROM point_entry e, point_rule r
                                 WHERE r.id = e.rule_id AND e.member_id = w.id AND e.status = 'approved'
                                   AND e.occurred_on BETWEEN CAST(:a AS date) AND CAST(:b AS date) - 1)
                    FROM worker w WHERE EXISTS (SELECT 1 FROM grid_assignment a WHERE a.worker_id = w.id
                                   AND a.role = 'party_member' AND {within.format(col="a.grid_id")})"""
    elif group == "household":
        sql = f"""SELECT h.id, (SELECT COALESCE(SUM(r.points), 0) FROM household_point_entry e, point_rule r
                                 WHERE r.id = e.rule_id AND e.household_id = h.id
                                   AND e.occurred_on BETWEEN CAST(:a AS date) AND CAST(:b AS date) - 1)
                    FROM household h WHERE {within.format(col="h.grid_id")}"""
    else:
        sql = f"""SELECT h.grid_id, SUM((SELECT COALESCE(SUM(r.points), 0) FROM household_point_entry e, point_rule r
                                 WHERE r.id = e.rule_id AND e.household_id = h.id
                                   AND e.occurred_on BETWEEN CAST(:a AS date) AND CAST(:b AS date) - 1))
                    FROM household h WHERE {within.format(col="h.grid_id")} GROUP BY h.grid_id"""
    rows = [
        (int(i), int(t))
        for i, t in db_session.execute(text(sql), {"a": Q_START, "b": Q_END, "scope": scope}).all()
    ]
    rows.sort(key=lambda r: (-r[1], r[0]))
    out = []
    for i, (ident, total) in enumerate(rows):
        rank = out[-1][2] if out and out[-1][1] == total else i + 1
        out.append((ident, total, rank))
    return out


def test_the_quarters_ranking_matches_an_independent_count(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    other = _other_member(db_session)
    own_home, far_home = _own_household(db_session, accounts), _other_household(db_session)
    for rule, day in (
        ("DY-LZ-01", "2026-10-08"),
        ("DY-JL-01", "2026-12-01"),
        ("DY-FM-02", "2026-11-20"),
    ):
        _approve(
            app,
            accounts,
            _propose(app, accounts, "party_member", rule, day).get_json()["entry"]["id"],
        )
    _propose(app, accounts, "party_member", "DY-JL-01", "2026-11-21")  # pending: does not count
    _approve(
        app,
        accounts,
        _propose(app, accounts, "party_member", "DY-JL-01", "2026-09-30").get_json()["entry"]["id"],
    )  # Q3
    for member, rule in ((other, "DY-JL-02"),):
        entry = client.post(
            "/api/points/entries",
            json={"member_id": member, "rule_code": rule, "occurred_on": "2026-11-05"},
        )
        assert entry.status_code == 403  # the administrator does not propose; a chief would
        db_session.execute(
            text(
                "INSERT INTO point_entry (member_id, rule_id, occurred_on, status) SELECT :m, id, DATE '2026-11-05', 'approved'"
                " FROM point_rule WHERE code = :r"
            ),
            {"m": member, "r": rule},
        )
    homes = db_session.scalars(
        text(
            "SELECT id FROM household WHERE grid_id = (SELECT grid_id FROM household WHERE id = :h) ORDER BY id LIMIT 4"
        ),
        {"h": own_home},
    ).all()
    centre = _as(app, accounts["centre"])
    for i, h in enumerate([*homes, own_home]):
        for _ in range(i + 1):
            assert (
                centre.post(
                    f"/api/points/households/{h}/entries",
                    json={"rule_code": "HH-JL-02", "occurred_on": "2026-10-10"},
                ).status_code
                == 201
            )
    centre.post(f"/api/points/households/{homes[0]}/entries", json={"rule_code": "HH-FM-01"})
    client.post(
        f"/api/points/households/{far_home}/entries",
        json={"rule_code": "HH-JL-01", "occurred_on": "2026-11-11"},
    )
    centre_scope = sorted(
        db_session.scalars(
            text(
                """WITH RECURSIVE t AS (SELECT id FROM grid WHERE code = '340188001' AND valid_to IS NULL
               UNION SELECT c.id FROM grid c JOIN t ON c.parent_id = t.id) SELECT id FROM t"""
            )
        ).all()
    )
    for who, scope in (("admin", None), ("centre", centre_scope)):
        for group in ("member", "household", "grid"):
            res = _as(app, accounts[who]).get(
                f"/api/points/ranking?quarter={QUARTER}&group={group}&limit=1000"
            )
            assert res.status_code == 200, res.get_json()
            body = res.get_json()
            want = _expected(db_session, group, scope)
            assert body["count"] == len(want), (who, group)
            assert [(i["id"], i["total"], i["rank"]) for i in body["items"]] == want[:1000], (
                who,
                group,
            )
            if group == "grid":
                for item in body["items"]:
                    assert item["average"] == pytest.approx(
                        item["total"] / item["households"], abs=0.005
                    )
    mine = (
        _as(app, accounts["centre"])
        .get(f"/api/points/ranking?quarter={QUARTER}&group=member")
        .get_json()["items"]
    )
    assert mine[0]["id"] == accounts["party_member"].worker_id and mine[0]["total"] == 5 + 5 - 3
    assert other not in [i["id"] for i in mine]
    assert _as(app, accounts["department"]).get("/api/points/ranking").status_code == 403
    res = centre.get("/api/points/ranking?quarter=2026Q5")
    assert res.status_code == 400 and res.get_json()["error"]["param"] == "quarter"

"""Points ledgers: the versioned rulebook, a member's entry through its two-step review, who sees
which ledger, households' points and exchanges that never overdraw (also when two arrive at
once), and the quarterly ranking recomputed independently with plain SQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.api.case_helpers import RESIDENT, act, ok, walk_to
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
                WHERE a.worker_id = :w AND a.role = 'party_member' AND h.linked_member_id = :w
                ORDER BY h.id LIMIT 1"""
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
        sql = f"""SELECT w.id, (SELECT COALESCE(SUM(COALESCE(e.points, r.points)), 0) FROM point_entry e, point_rule r
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


# ---------------------------------------------------------------- automatic entries

MICRO = "3401880010010101"  # the test accounts' micro-grid
VILLAGE = "340188001001"  # 爱辉社区, the community (level 2) holding it


def _linked_home(db_session, member: int) -> int:  # type: ignore[no-untyped-def]
    home = db_session.scalar(
        text(
            "SELECT h.id FROM household h JOIN grid g ON g.id = h.grid_id WHERE g.code = :c ORDER BY h.id LIMIT 1"
        ),
        {"c": MICRO},
    )
    db_session.execute(
        text("UPDATE household SET linked_member_id = :m WHERE id = :h"), {"m": member, "h": home}
    )
    return home


def _member_total(db_session, member: int) -> int:  # type: ignore[no-untyped-def]
    return int(
        db_session.scalar(
            text(
                """SELECT COALESCE(SUM(CASE WHEN e.points IS NOT NULL THEN e.points ELSE r.points END), 0)
                     FROM point_entry e, point_rule r WHERE r.id = e.rule_id AND e.member_id = :m
                      AND e.status = 'approved'"""
            ),
            {"m": member},
        )
    )


def test_automatic_entries_name_their_record_and_are_made_once(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    member = accounts["party_member"].worker_id
    home = _linked_home(db_session, member)
    closed = walk_to(client, "closed")
    solved = db_session.execute(
        text(
            """SELECT id, code, (closed_at AT TIME ZONE 'Asia/Shanghai')::date AS day FROM "case"
                WHERE id = :c"""
        ),
        {"c": closed["id"]},
    ).one()
    db_session.execute(
        text(
            "UPDATE case_event SET actor_worker_id = :m WHERE id = (SELECT min(id) FROM case_event"
            " WHERE case_id = :c AND action = 'report')"
        ),
        {"m": member, "c": solved.id},
    )
    dispute = walk_to(client, "dispatched", category="dispute")["id"]
    db_session.execute(
        text(
            """UPDATE "case" SET category = 'dispute', deadline = now() - interval '2 days',
                      resolved_at = NULL WHERE id = :c"""
        ),
        {"c": dispute},
    )
    db_session.execute(
        text(
            """INSERT INTO visit (worker_id, household_id, kind, visited_at, case_id)
               VALUES (:m, :h, 'adhoc', now() - interval '3 days', :c)"""
        ),
        {"m": member, "h": home, "c": dispute},
    )
    centre = _as(app, accounts["centre"])
    took_part = centre.post(
        f"/api/points/households/{home}/entries",
        json={"rule_code": "HH-JL-01", "occurred_on": "2026-11-11"},
    ).get_json()["entry"]
    lost = centre.post(
        f"/api/points/households/{home}/entries",
        json={"rule_code": "HH-FM-01", "occurred_on": "2026-11-12"},
    ).get_json()["entry"]
    assert _as(app, accounts["worker"]).post("/api/points/sync").status_code == 403
    first = client.post("/api/points/sync")
    assert first.status_code == 200, first.get_json()
    made = first.get_json()["made"]
    assert made["case_solved"] >= 1 and made["case_overdue"] >= 1
    assert made["household_part"] >= 1 and made["household_loss"] >= 1
    again = client.post("/api/points/sync").get_json()["made"]
    assert again == {"case_solved": 0, "case_overdue": 0, "household_part": 0, "household_loss": 0}
    ledger = _as(app, accounts["party_member"]).get(f"/api/points/members/{member}").get_json()
    by_source = {
        (e["source"]["kind"], e["source"]["id"]): e for e in ledger["entries"] if e["source"]
    }
    case_entry = by_source[("case_solved", solved.id)]
    assert case_entry["points"] == 2 and case_entry["status"] == "approved"
    assert case_entry["occurred_on"] == solved.day.isoformat() and solved.code in case_entry["note"]
    assert by_source[("case_overdue", dispute)]["points"] == -3
    assert by_source[("household_part", took_part["id"])]["points"] == 5
    assert by_source[("household_part", took_part["id"])]["rule"]["code"] == "DY-LZ-01"
    assert by_source[("household_loss", lost["id"])]["points"] == -1  # half of −2
    assert ("household_part", lost["id"]) not in by_source
    assert ledger["total"] == _member_total(db_session, member)
    # a changed share applies to losses synced after it; what was made stays as made
    res = client.put("/api/points/settings", json={"link_loss_share": 1})
    assert res.status_code == 200 and res.get_json()["settings"]["link_loss_share"] == 1
    bad = client.put("/api/points/settings", json={"link_loss_share": 2})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "link_loss_share"
    second = centre.post(
        f"/api/points/households/{home}/entries",
        json={"rule_code": "HH-FM-01", "occurred_on": "2026-11-20"},
    ).get_json()["entry"]
    assert client.post("/api/points/sync").get_json()["made"]["household_loss"] == 1
    ledger = client.get(f"/api/points/members/{member}").get_json()
    by_source = {
        (e["source"]["kind"], e["source"]["id"]): e for e in ledger["entries"] if e["source"]
    }
    assert by_source[("household_loss", lost["id"])]["points"] == -1
    assert by_source[("household_loss", second["id"])]["points"] == -2
    assert ledger["total"] == _member_total(db_session, member)
    # the ranking counts the shares too
    ranking = centre.get(f"/api/points/ranking?quarter={QUARTER}&group=member&limit=1000")
    want = _expected(db_session, "member", None)
    got = {i["id"]: i["total"] for i in ranking.get_json()["items"]}
    assert got[member] == dict((i, t) for i, t, _ in want)[member]


def test_a_case_a_member_reported_earns_the_points_the_moment_it_closes(
    client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    member = accounts["party_member"].worker_id
    case = walk_to(client, "verified")
    db_session.execute(
        text(
            "UPDATE case_event SET actor_worker_id = :m WHERE id = (SELECT min(id) FROM case_event"
            " WHERE case_id = :c AND action = 'report')"
        ),
        {"m": member, "c": case["id"]},
    )

    def entries() -> list[Any]:
        return db_session.execute(
            text(
                """SELECT member_id, status FROM point_entry
                    WHERE source_kind = 'case_solved' AND source_id = :c"""
            ),
            {"c": case["id"]},
        ).all()

    assert entries() == []  # verified is not closed yet
    ok(act(client, case["id"], "rate", RESIDENT, satisfaction=4, solved=True))
    assert [tuple(r) for r in entries()] == [(member, "approved")]  # no sync was run
    assert client.post("/api/points/sync").get_json()["made"]["case_solved"] == 0  # made once


def test_a_worker_reads_members_surnames_only_and_the_administrator_never_takes_the_chiefs_step(
    app, client, accounts
) -> None:  # type: ignore[no-untyped-def]
    entry = _propose(app, accounts, "party_member", "DY-LZ-01", "2026-11-02").get_json()["entry"]
    _approve(app, accounts, entry["id"])
    url = f"/api/points/ranking?quarter={QUARTER}&group=member"
    full = _as(app, accounts["grid_chief"]).get(url).get_json()
    masked = _as(app, accounts["worker"]).get(url).get_json()
    assert not full["names_masked"] and masked["names_masked"]
    names = {i["id"]: i["name"] for i in full["items"]}
    assert masked["items"] and {i["id"] for i in masked["items"]} <= set(names)
    for item in masked["items"]:
        assert item["name"] == names[item["id"]][0] + "*" * max(1, len(names[item["id"]]) - 1)
    other = _propose(app, accounts, "party_member", "DY-LZ-01", "2026-11-03").get_json()["entry"]
    res = client.post(f"/api/points/entries/{other['id']}/review", json={"decision": "approve"})
    assert res.status_code == 409 and "网格长" in res.get_json()["error"]["message"]


# ---------------------------------------------------------------- star ratings

STAR_Q, STAR_T0, STAR_T1 = "2026Q3", "2026-07-01", "2026-10-01"


def _independent_stars(db_session, settings: dict) -> dict[int, tuple[dict, float, int]]:  # type: ignore[no-untyped-def]
    """Each micro-grid's criteria, score and stars, counted here grid by grid."""
    micro = (
        db_session.execute(text("SELECT id FROM grid WHERE level = 4 AND valid_to IS NULL"))
        .scalars()
        .all()
    )
    out = {}
    for gid in micro:
        own = db_session.scalars(
            text("SELECT id FROM grid WHERE id = :g OR (parent_id = :g AND level = 5)"), {"g": gid}
        ).all()
        t = {"g": list(own), "a": STAR_T0, "b": STAR_T1}
        n, closed, sat = db_session.execute(
            text(
                """SELECT count(*), count(*) FILTER (WHERE status = 'closed'), avg(satisfaction) FROM "case"
                    WHERE grid_id = ANY(:g) AND status <> 'cancelled'
                      AND created_at >= CAST(:a AS date)::timestamp AT TIME ZONE 'Asia/Shanghai'
                      AND created_at < CAST(:b AS date)::timestamp AT TIME ZONE 'Asia/Shanghai'"""
            ),
            t,
        ).one()
        if n:
            cases = 100 * closed / n if sat is None else (100 * closed / n + float(sat) * 20) / 2
        else:
            cases = 100.0
        homes, visited = db_session.execute(
            text(
                """SELECT count(*), count(*) FILTER (WHERE h.id IN (SELECT household_id FROM visit
                          WHERE visited_at >= CAST(:a AS date)::timestamp AT TIME ZONE 'Asia/Shanghai'
                            AND visited_at < CAST(:b AS date)::timestamp AT TIME ZONE 'Asia/Shanghai'))
                     FROM household h WHERE h.grid_id = ANY(:g)"""
            ),
            t,
        ).one()
        visits = 100 * visited / homes if homes else 100.0
        members = db_session.scalars(
            text(
                "SELECT DISTINCT worker_id FROM grid_assignment WHERE role = 'party_member' AND grid_id = ANY(:g)"
            ),
            t,
        ).all()
        pts = 0
        for m in members:
            pts += db_session.scalar(
                text(
                    """SELECT COALESCE(SUM(COALESCE(e.points, r.points)), 0) FROM point_entry e
                         JOIN point_rule r ON r.id = e.rule_id WHERE e.member_id = :m AND e.status = 'approved'
                          AND e.occurred_on >= CAST(:a AS date) AND e.occurred_on < CAST(:b AS date)"""
                ),
                {**t, "m": m},
            ) * sum(
                1
                for _ in db_session.scalars(
                    text(
                        "SELECT 1 FROM grid_assignment WHERE worker_id = :m AND role = 'party_member' AND grid_id = ANY(:g)"
                    ),
                    {**t, "m": m},
                )
            )
        mp = (
            max(0.0, min(100.0, 100 * pts / len(members) / settings["member_points_target"]))
            if members
            else 0.0
        )
        days = db_session.scalar(
            text(
                """SELECT count(DISTINCT e.occurred_on) FROM household_point_entry e JOIN point_rule r ON r.id = e.rule_id
                     JOIN household h ON h.id = e.household_id WHERE h.grid_id = ANY(:g)
                      AND r.code = ANY(:codes) AND e.occurred_on >= CAST(:a AS date) AND e.occurred_on < CAST(:b AS date)"""
            ),
            {**t, "codes": settings["participation_rules"]},
        )
        events = min(100.0, 100 * days / settings["events_target"])
        scores = {"cases": cases, "visits": visits, "member_points": mp, "events": events}
        w = settings["star_weights"]
        score = sum(round(scores[k], 1) * w[k] for k in scores) / sum(w.values())
        stars = sum(1 for th in settings["star_thresholds"] if round(score, 1) >= th)
        out[gid] = ({k: round(v, 1) for k, v in scores.items()}, round(score, 1), stars)
    return out


def test_star_ratings_match_an_independent_count_and_freeze_when_the_quarter_closes(
    app, client, db_session, accounts
) -> None:  # type: ignore[no-untyped-def]
    member = accounts["party_member"].worker_id
    micro = db_session.scalar(
        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": MICRO}
    )
    for day in ("2026-08-03", "2026-09-10"):
        _approve(
            app,
            accounts,
            _propose(app, accounts, "party_member", "DY-JL-01", day).get_json()["entry"]["id"],
        )
    home = _linked_home(db_session, member)
    centre = _as(app, accounts["centre"])
    for day in ("2026-07-05", "2026-08-05", "2026-08-05"):
        centre.post(
            f"/api/points/households/{home}/entries",
            json={"rule_code": "HH-JL-01", "occurred_on": day},
        )
    assert client.post("/api/points/sync").get_json()["made"]["household_part"] == 3
    settings = client.get("/api/points/settings").get_json()["settings"]
    res = client.get(f"/api/stars?quarter={STAR_Q}")
    assert res.status_code == 200, res.get_json()
    live = res.get_json()
    assert live["closed"] is False
    want = _independent_stars(db_session, settings)
    assert {i["grid_id"] for i in live["items"]} == set(want)
    for item in live["items"]:
        scores, score, stars = want[item["grid_id"]]
        assert (item["scores"], item["score"], item["computed_stars"]) == (scores, score, stars)
    ranked = sorted(live["items"], key=lambda i: (-i["stars"], -i["score"], i["code"]))
    assert [i["grid_id"] for i in live["items"]] == [i["grid_id"] for i in ranked]
    assert live["items"][0]["rank"] == 1
    mine = next(i for i in live["items"] if i["grid_id"] == micro)
    assert mine["scores"]["events"] == round(min(100.0, 100 * 2 / settings["events_target"]), 1)
    # the grid chief adjusts with a reason; the micro-grid's own chief may not
    adjust = f"/api/stars/grids/{micro}/adjust"
    chief = _as(app, accounts["grid_chief"])
    bad = chief.post(adjust, json={"quarter": STAR_Q, "delta": 1})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "reason"
    assert (
        _as(app, accounts["micro_chief"])
        .post(adjust, json={"quarter": STAR_Q, "delta": 1, "reason": "x理由"})
        .status_code
        == 403
    )
    far = db_session.scalar(
        text(
            "SELECT id FROM grid WHERE level = 4 AND valid_to IS NULL AND code LIKE '3401881%' LIMIT 1"
        )
    )
    if far is not None:
        assert (
            chief.post(
                f"/api/stars/grids/{far}/adjust",
                json={"quarter": STAR_Q, "delta": 1, "reason": "越权调整"},
            ).status_code
            == 404
        )
    delta = -1 if mine["computed_stars"] > 0 else 1
    res = chief.post(
        adjust, json={"quarter": STAR_Q, "delta": delta, "reason": "群众满意度回访偏低"}
    )
    assert res.status_code == 201, res.get_json()
    after = client.get(f"/api/stars?quarter={STAR_Q}").get_json()
    mine = next(i for i in after["items"] if i["grid_id"] == micro)
    assert mine["stars"] == max(0, min(5, mine["computed_stars"] + delta))
    assert mine["adjustment_reason"] == "群众满意度回访偏低"
    # closing: the whole city's centre or the administrator, once; then frozen
    assert centre.post("/api/stars/close", json={"quarter": STAR_Q}).status_code == 403
    assert client.get(f"/api/stars/export?quarter={STAR_Q}").status_code == 409
    res = client.post("/api/stars/close", json={"quarter": STAR_Q})
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["grids"] == len(want)
    assert client.post("/api/stars/close", json={"quarter": STAR_Q}).status_code == 409
    assert (
        chief.post(adjust, json={"quarter": STAR_Q, "delta": 1, "reason": "关闭后调整"}).status_code
        == 409
    )
    late = _propose(app, accounts, "party_member", "DY-JL-01", "2026-09-11")
    assert late.status_code == 409 and late.get_json()["error"]["param"] == "occurred_on"
    frozen = client.get(f"/api/stars?quarter={STAR_Q}").get_json()
    assert frozen["closed"] is True and frozen["closed_at"]
    assert [(i["grid_id"], i["stars"], i["score"]) for i in frozen["items"]] == [
        (i["grid_id"], i["stars"], i["score"]) for i in after["items"]
    ]
    from app.services import notice_print

    board = notice_print.sheet(db_session, micro)
    assert board["stars"]["stars"] == mine["stars"] and board["stars"]["quarter"] == STAR_Q
    assert board["stars"]["text"].count("★") == mine["stars"]
    history = chief.get(f"/api/stars/grids/{micro}").get_json()
    assert (
        history["ratings"][0]["quarter"] == STAR_Q
        and history["ratings"][0]["stars"] == mine["stars"]
    )
    assert history["adjustments"][0]["reason"] == "群众满意度回访偏低"
    # what the centre sees is its street's
    scoped = centre.get(f"/api/stars?quarter={STAR_Q}").get_json()
    assert 0 < scoped["count"] < frozen["count"] or scoped["count"] == frozen["count"]
    assert micro in [i["grid_id"] for i in scoped["items"]]
    # the map layer and the allowance export
    features = chief.get("/api/stars/map").get_json()["features"]
    assert any(
        f["properties"]["grid_id"] == micro and f["properties"]["stars"] == mine["stars"]
        for f in features
    )
    db_session.execute(
        text(
            "UPDATE worker SET name = '=HYPERLINK(1)' WHERE id = (SELECT worker_id FROM grid_assignment WHERE grid_id = :g AND role = 'micro_chief' LIMIT 1)"
        ),
        {"g": micro},
    )
    res = centre.get(f"/api/stars/export?quarter={STAR_Q}&format=csv")
    assert res.status_code == 200
    body = res.data.decode("utf-8-sig")
    line = next(ln for ln in body.splitlines() if MICRO in ln and "微网格长" in ln)
    per_star = settings["allowance_per_star"]["micro_chief"]
    assert "'=HYPERLINK(1)" in line and line.endswith(str(float(mine["stars"] * per_star)))
    assert (
        _as(app, accounts["worker"]).get(f"/api/stars/export?quarter={STAR_Q}").status_code == 403
    )
    xlsx = centre.get(f"/api/stars/export?quarter={STAR_Q}&format=xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"


def test_an_inspector_rates_a_service_point_with_photos(app, client, db_session, accounts) -> None:  # type: ignore[no-untyped-def]
    import base64
    import io

    from PIL import Image

    point = db_session.scalar(text("SELECT id FROM service_point ORDER BY id LIMIT 1"))
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, "PNG")
    body = {
        "quarter": "2026Q4",
        "hardware": 25,
        "organisation": 24,
        "norms": 23,
        "effect": 20,
        "note": "站点整洁",
        "photo_base64": base64.b64encode(buf.getvalue()).decode(),
    }
    res = client.post(f"/api/stars/service-points/{point}/ratings", json=body)
    assert res.status_code == 201, res.get_json()
    rating = res.get_json()["rating"]
    assert rating["total"] == 92 and rating["stars"] == 4 and rating["photos"] == 1
    bad = client.post(f"/api/stars/service-points/{point}/ratings", json={**body, "effect": 26})
    assert bad.status_code == 400 and bad.get_json()["error"]["param"] == "effect"
    listed = client.get("/api/stars/service-points?quarter=2026Q4").get_json()["items"]
    assert next(i for i in listed if i["id"] == point)["rating"]["stars"] == 4
    assert (
        _as(app, accounts["worker"])
        .post(f"/api/stars/service-points/{point}/ratings", json=body)
        .status_code
        == 403
    )


def test_a_villages_public_page_shows_only_what_it_publishes(
    app, client, anon_client, db_session
) -> None:  # type: ignore[no-untyped-def]
    home = db_session.scalar(
        text(
            "SELECT h.id FROM household h JOIN grid g ON g.id = h.grid_id WHERE g.code = :c ORDER BY h.id LIMIT 1"
        ),
        {"c": MICRO},
    )
    db_session.execute(
        text(
            "UPDATE household SET head_name = '欧阳明远', head_phone = '13912345678', building = '7栋', unit = '2单元', room = '301', address = '幸福路99号' WHERE id = :h"
        ),
        {"h": home},
    )
    for _ in range(3):
        client.post(
            f"/api/points/households/{home}/entries",
            json={"rule_code": "HH-JL-02", "occurred_on": "2026-10-12"},
        )
    res = anon_client.get(f"/points/public/{VILLAGE}?quarter={QUARTER}")
    assert res.status_code == 200
    page = res.data.decode()
    assert "7栋-2单元-301" in page and "<td>欧</td>" in page
    for secret in ("欧阳明远", "明远", "13912345678", "幸福路", "5678"):
        assert secret not in page
    assert (
        client.put("/api/points/settings", json={"public_fields": ["house_number"]}).status_code
        == 200
    )
    page = anon_client.get(f"/points/public/{VILLAGE}?quarter={QUARTER}").data.decode()
    assert "7栋-2单元-301" in page and "<td>欧</td>" not in page and "户主姓氏" not in page
    assert anon_client.get("/points/public/000000").status_code == 404
    app.config["POINTS_PUBLIC_LIMIT"] = 2
    codes = [anon_client.get(f"/points/public/{VILLAGE}").status_code for _ in range(3)]
    assert codes[-1] == 429

"""What people read: who acted on a case, times in China time, error messages in Chinese."""

from __future__ import annotations

from datetime import UTC, date, datetime

from app.services.cases import actor_name
from app.web.errors import chinese_first
from app.web.labels import audit_action
from app.web.timefmt import china_time


def test_case_timeline_names_the_actor_in_chinese() -> None:
    assert actor_name("resident", "resident") == "居民"
    assert actor_name("worker worker:5 专职网格员", "worker", "王五") == "网格员 王五"
    assert actor_name("worker worker:5 t-worker", "worker", None) == "网格员 t-worker"
    assert actor_name("centre 值班长（指挥中心）", "centre") == "指挥中心 值班长（指挥中心）"
    assert actor_name("system 系统", "system") == "系统"
    assert actor_name("department department:2 城管中队", "department") == "职能部门 城管中队"


def test_times_are_china_time_minutes() -> None:
    assert china_time(datetime(2026, 12, 7, 6, 0, tzinfo=UTC)) == "2026-12-07 14:00"
    assert china_time("2026-12-07T06:00:00+00:00") == "2026-12-07 14:00"
    assert china_time("2026-12-06T20:30:59+00:00") == "2026-12-07 04:30"
    assert china_time(date(2026, 12, 7)) == "2026-12-07"
    assert china_time(None) == ""


def test_english_only_messages_read_in_chinese_first() -> None:
    assert (
        chinese_first("not_found", "case SJ1 does not exist")
        == "事件 SJ1 不存在 / case SJ1 does not exist"
    )
    assert (
        chinese_first("bad_parameter", "lat: is required", "lat")
        == "lat（纬度）：必须填写 / lat: is required"
    )
    assert (
        chinese_first("not_found", "a sentence nobody wrote")
        == "未找到所请求的记录 / a sentence nobody wrote"
    )
    assert chinese_first("conflict", "网格已被修改 / stale") == "网格已被修改 / stale"


def test_audit_actions_read_as_chinese() -> None:
    assert audit_action("login", "login") == "登录"
    assert audit_action("change", "PATCH grid_edit_api.patch") == "网格编辑·修改"
    assert audit_action("login_failed", "login_failed") == "用户名或密码错误"
    assert audit_action("export", "export cases.xlsx") == "导出事件（Excel）"
    assert audit_action("read", "list visits") == "查看走访记录"
    assert audit_action("read", "visit 12") == "查看走访 12"
    assert audit_action("read", "visits due") == "查看待走访名单"
    assert audit_action("read", "patrol map 7 2026-12-05") == "查看巡查轨迹 7 2026-12-05"
    assert audit_action("export", "field kpis export") == "导出走访巡查指标"

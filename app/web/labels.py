"""Words for what pages show: audit entries, accounts' links — names, not codes or ids."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.auth import USER_ROLE_NAMES

AUDIT_KIND_NAMES = {
    "change": "修改",
    "read_personal": "查看个人信息",
    "export": "导出",
    "login": "登录",
    "login_failed": "登录失败",
    "logout": "退出登录",
    "admin": "账号管理",
}
# The modules an audited endpoint belongs to (its blueprint).
MODULE_NAMES = {
    "auth_api": "账号",
    "grid_edit_api": "网格编辑",
    "partition_api": "自动划分",
    "cases_api": "事件",
    "overrides_api": "管辖例外区域",
    "coverage_api": "服务圈",
    "transfer_api": "导入导出",
    "locate_api": "坐标定位",
    "personal_api": "个人信息",
    "grids_api": "网格",
    "places_api": "服务点与摄像头",
    "open311": "居民上报接口",
    "auth_pages": "账号",
    "cli": "命令行",
}
VERBS = {"POST": "新增/提交", "PATCH": "修改", "PUT": "设置", "DELETE": "删除"}
ACTIONS = {
    "login": "登录",
    "logout": "退出登录",
    "read household": "查看住户信息",
    "reveal household": "查看住户完整信息",
    "reveal case": "查看事件联系人",
    "audit export": "导出审计日志",
}
# The kinds of record an import or export names (the object of such an entry).
RECORD_KINDS = {
    "departments": "部门",
    "grids": "网格",
    "workers": "网格员",
    "assignments": "网格分工",
    "households": "住户",
    "service_points": "服务站点",
    "cameras": "摄像头",
    "basemap": "底图",
}
# Reads of personal data logged with a detail after the words (an id, a day): the longest
# matching prefix names the read, and the detail follows it.
READS = {
    "list visits": "查看走访记录",
    "visits due": "查看待走访名单",
    "visit": "查看走访",
    "checkins": "查看打卡记录",
    "attendance export": "导出出勤表",
    "list patrols": "查看巡查记录",
    "patrol map": "查看巡查轨迹",
    "patrol": "查看巡查",
    "field kpis export": "导出走访巡查指标",
    "network mismatch export": "导出专业网格比对",
    "import job": "后台导入任务",
}
OBJECT_NAMES = {
    "user": "账号",
    "grid": "网格",
    "case": "事件",
    "household": "住户",
    "override_area": "管辖例外区域",
    "grid_change": "网格变更",
    "import": "导入",
    "audit_log": "审计日志",
    "visit": "走访",
    "patrol": "巡查",
    "checkin": "打卡",
    "worker": "网格员",
    "network": "专业网格图层",
    "import_job": "导入任务",
    # an endpoint's module, for changes that name no record
    "cases": "事件",
    "auth": "账号",
    "grids": "网格",
    "grid_edit": "网格编辑",
    "partition": "自动划分",
    "overrides": "管辖例外区域",
    "coverage": "服务圈",
    "transfer": "导入导出",
    "locate": "坐标定位",
    "personal": "个人信息",
    "places": "服务点与摄像头",
    "open311": "居民上报接口",
    "auth_pages": "账号",
    "emap": "电子地图",
}
FAILURES = {
    "login_failed": "用户名或密码错误",
    "too_many_attempts": "尝试次数过多",
}


def audit_action(kind: str, action: str) -> str:
    """An entry's action in words: "POST grid_edit_api.patch" → "网格编辑·新增/提交"."""
    if action in ACTIONS:
        return ACTIONS[action]
    method, _, endpoint = action.partition(" ")
    if method in VERBS and endpoint:
        module = MODULE_NAMES.get(endpoint.split(".")[0], "其他")
        return f"{module}·{VERBS[method]}"
    if action.startswith("export"):
        return "导出" + {"cases.csv": "事件（CSV）", "cases.xlsx": "事件（Excel）"}.get(
            action[7:], "数据"
        )
    if action.startswith("household ledger"):
        return "查看住户台账" + action[len("household ledger") :].replace("(", "（").replace(
            ")", "）"
        )
    if action.startswith("list households"):
        return "查看住户名单" + action[len("list households") :].replace("(", "（").replace(
            ")", "）"
        )
    if kind == "login_failed":
        reason = action.removeprefix("password change: ")
        where = "修改密码：" if action.startswith("password change") else ""
        return where + FAILURES.get(reason, "失败")
    if action.startswith("cli "):
        return "命令行操作"
    for prefix in sorted(READS, key=len, reverse=True):
        if action == prefix or action.startswith(prefix + " "):
            return READS[prefix] + action[len(prefix) :]
    return action


def audit_rows(session: Session, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries as the audit page shows them: Chinese kinds and roles, objects by name."""
    users = {
        str(r.id): r.username
        for r in session.execute(
            text("SELECT id, username FROM app_user WHERE id::text = ANY(:ids)"),
            {
                "ids": sorted(
                    {
                        e["object_id"]
                        for e in entries
                        if e["object_type"] == "user" and e["object_id"]
                    }
                )
            },
        )
    }
    grids = {
        str(r.id): f"{r.name}（{r.code}）"
        for r in session.execute(
            text("SELECT id, name, code FROM grid WHERE id::text = ANY(:ids)"),
            {
                "ids": sorted(
                    {
                        e["object_id"]
                        for e in entries
                        if e["object_type"] == "grid" and e["object_id"]
                    }
                )
            },
        )
    }
    out = []
    for e in entries:
        otype, oid = e["object_type"], e["object_id"]
        name = OBJECT_NAMES.get(otype or "", MODULE_NAMES.get(otype or "", "其他" if otype else ""))
        if otype == "user" and oid:
            obj = f"{name} {users.get(oid, oid)}"
        elif otype == "grid" and oid:
            obj = f"{name} {grids.get(oid, oid)}"
        else:
            obj = f"{name} {RECORD_KINDS.get(oid, oid) if oid else ''}".strip()
        out.append(
            e
            | {
                "who": "命令行"
                if e["role"] == "operator" and e["username"] == "cli"
                else (e["username"] or ""),
                "kind_name": AUDIT_KIND_NAMES.get(e["kind"], e["kind"]),
                "role_name": USER_ROLE_NAMES.get(
                    e["role"] or "", {None: "", "operator": "运维"}.get(e["role"], "其他")
                ),
                "action_name": audit_action(e["kind"], e["action"]),
                "object_name": obj,
            }
        )
    return out


def link_names(session: Session, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accounts with the names of their worker, department and grid instead of ids."""

    def names(sql: str, ids: set[Any]) -> dict[int, str]:
        ids = {i for i in ids if i is not None}
        if not ids:
            return {}
        return {r[0]: r[1] for r in session.execute(text(sql), {"ids": sorted(ids)})}

    workers = names(
        "SELECT id, name || '（' || code || '）' FROM worker WHERE id = ANY(CAST(:ids AS integer[]))",
        {u["worker_id"] for u in users},
    )
    depts = names(
        "SELECT id, name FROM department WHERE id = ANY(CAST(:ids AS integer[]))",
        {u["department_id"] for u in users},
    )
    grids = names(
        "SELECT id, name || '（' || code || '）' FROM grid WHERE id = ANY(CAST(:ids AS integer[]))",
        {u["grid_id"] for u in users},
    )
    return [
        u
        | {
            "worker_name": workers.get(u["worker_id"], ""),
            "department_name": depts.get(u["department_id"], ""),
            "grid_name": grids.get(u["grid_id"], ""),
        }
        for u in users
    ]

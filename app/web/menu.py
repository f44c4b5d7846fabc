"""The menu of the page shell: the modules of the platform and who sees which.

``MODULES`` is the one list of the platform's modules (path, Chinese label). Whether a role sees
a module is not written down a second time: the path is matched to its endpoint in the app and
the endpoint's access rule (``app.auth.policy.RULES``) decides, so the menu can never show a
link the role may not open. ``roles`` may narrow a module further (a menu entry that is of no
use to a role that could open the page), never widen it; a path the app does not serve is left
out of every menu.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from app.auth.policy import ANONYMOUS_ROLE, rule_for


@dataclass(frozen=True)
class Module:
    """One entry of the menu."""

    path: str
    label: str
    roles: frozenset[str] | None = None  # narrows the endpoint's rule; None: as the rule says


FIELD_STAFF = frozenset({"admin", "centre", "grid_chief", "micro_chief", "worker", "party_member"})

MODULES: list[Module] = [
    Module("/overview", "一张图", frozenset({"admin", "centre", "grid_chief", "micro_chief"})),
    Module("/emap", "电子地图"),
    Module("/cases/desk", "受理台"),
    Module("/cases/worker", "我的事件", FIELD_STAFF),
    Module("/visits", "走访打卡"),
    Module("/ledgers", "台账"),
    Module("/points", "积分排名"),
    Module("/stars", "评星定级"),
    Module("/cases/kpi", "考核指标"),
    Module("/networks", "多网合一"),
    Module("/admin/users", "账号管理"),
    Module("/admin/audit", "审计日志"),
    # A resident without an account: report a case, follow it by its code.
    Module("/report", "我要上报", frozenset({ANONYMOUS_ROLE})),
    Module("/cases/track", "查询评价", frozenset({ANONYMOUS_ROLE})),
]


def endpoint_of(app: Flask, path: str) -> str | None:
    """Return the endpoint that answers GET ``path`` in ``app``, or None if none does."""
    adapter = app.url_map.bind("localhost")
    try:
        endpoint, _args = adapter.match(path, method="GET")
    except RequestRedirect as redirect:  # e.g. a trailing slash: follow it once
        try:
            endpoint, _args = adapter.match(
                redirect.new_url.split("localhost", 1)[-1], method="GET"
            )
        except HTTPException:
            return None
    except HTTPException:
        return None
    return str(endpoint)


def may_open(app: Flask, module: Module, role: str) -> bool:
    """Say whether ``role`` may open ``module`` (its endpoint's rule, narrowed by the module)."""
    if module.roles is not None and role not in module.roles:
        return False
    rule = rule_for(endpoint_of(app, module.path))
    return rule is not None and role in rule.roles and rule.check is None


def menu_for(role: str, app: Flask | None = None) -> list[Module]:
    """The modules ``role`` may open, in menu order."""
    app = app or current_app
    return [m for m in MODULES if may_open(app, m, role)]


def active_path() -> str:
    """The menu entry the current page belongs to (its path prefix)."""
    path = request.path if request else ""
    best = ""
    for m in MODULES:
        if (path == m.path or path.startswith(m.path.rstrip("/") + "/")) and len(m.path) > len(
            best
        ):
            best = m.path
    return best


def home_path() -> tuple[str, str]:
    """Where a "back" link goes for the signed-in role: its first module (else the sign-in)."""
    from app.auth import current_principal

    role = current_principal().role
    menu = menu_for(role)
    if menu:
        return menu[0].path, menu[0].label
    if role == "anonymous":
        return "/cases/track", "事件查询"
    return "/login", "登录页"


def register(app: Flask) -> None:
    """Give every template the menu of the signed-in role and the current page's entry."""
    from app.auth import current_principal
    from app.web.timefmt import china_time

    app.jinja_env.globals.update(
        shell_menu=lambda: menu_for(current_principal().role),
        shell_active=active_path,
    )
    app.jinja_env.filters["cntime"] = china_time

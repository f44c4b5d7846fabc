"""Who acts on a case: taken from the signed-in account, never from what the request claims."""

from __future__ import annotations

from app.auth.policy import Forbidden, Principal
from app.services.cases import Actor

_ROLE_TO_ACTOR = {
    "centre": "centre",
    "grid_chief": "micro_chief",
    "micro_chief": "micro_chief",
    "worker": "worker",
    "party_member": "worker",
    "department": "department",
}


def case_actor(p: Principal, requested: Actor | None) -> Actor:
    """Return the case actor of ``p``.

    An administrator may act as anyone (recorded under the administrator's own name in the audit
    log); everyone else acts as the account says, and a request naming somebody else is refused.
    """
    if p.role == "admin":
        return requested or Actor("centre", name=p.label[:40])
    role = _ROLE_TO_ACTOR.get(p.role)
    if role is None:
        raise Forbidden(f"角色 {p.role} 不能处理事件 / the role '{p.role}' may not act on cases")
    own = Actor(
        role,
        worker_id=p.worker_id if role in ("worker", "micro_chief") else None,
        department_id=p.department_id if role == "department" else None,
        name=p.label[:40],
    )
    if requested is not None and (
        requested.role != own.role
        or (requested.worker_id is not None and requested.worker_id != own.worker_id)
        or (requested.department_id is not None and requested.department_id != own.department_id)
    ):
        raise Forbidden(
            "操作人取自登录账号，不能代他人操作 / the actor is the signed-in account; "
            f"it may not act as {requested.label}"
        )
    return own

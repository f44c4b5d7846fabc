"""Accounts of every role on the sample street (the ``accounts`` fixture of tests/conftest.py
commits them once per run, with API tokens).

The sample's people: W00003 is grid chief of 爱辉社区第一网格 (34018800100101), W00009 micro-grid
chief of its first micro-grid (3401880010010101), W00005 a full-time worker of that grid, W00010 a
party member of that micro-grid; CG-AH is the city-management squad.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLE_ACCOUNTS = {
    "centre": {"grid_code": "340188001"},
    "grid_chief": {"worker_code": "W00003"},
    "micro_chief": {"worker_code": "W00009"},
    "worker": {"worker_code": "W00005"},
    "party_member": {"worker_code": "W00010"},
    "department": {"department_code": "CG-AH"},
    "camera_feed": {},
}


@dataclass(frozen=True)
class Account:
    role: str
    username: str
    user_id: int
    token: str
    worker_id: int | None
    department_id: int | None


def bearer(account: Account | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"} if account else {}

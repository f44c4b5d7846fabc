"""Accounts of every role on the sample street, committed once per run, with API tokens.

The ``accounts`` fixture is registered once, in tests/conftest.py, for every test folder (a
session fixture imported into several modules would run once per module and clash).

The sample's people: W00003 is grid chief of 爱辉社区第一网格 (34018800100101), W00009 micro-grid
chief of its first micro-grid (3401880010010101), W00005 a full-time worker of that grid, W00010 a
party member of that micro-grid; CG-AH is the city-management squad.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import text

from app import create_app
from app.db import get_db, transaction
from app.services import users as user_svc
from tests.conftest import TEST_PASSWORD

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


@pytest.fixture(scope="session")
def accounts(database_url: str, admin_auth: dict[str, str]) -> dict[str, Account]:
    """One committed account per role (and the test admin), each with a bearer token."""
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    out: dict[str, Account] = {}
    with app.app_context():
        session = get_db().session()
        with transaction(session):
            for role, links in ROLE_ACCOUNTS.items():
                username = f"t-{role.replace('_', '-')}"
                user = user_svc.create_user(
                    session,
                    username,
                    role,
                    None if role == "camera_feed" else TEST_PASSWORD,
                    **links,  # type: ignore[arg-type]
                )
                tok = user_svc.start_session(
                    session, user, None, user_svc.DEFAULT_LIMITS, kind="token"
                )
                out[role] = Account(
                    role, username, user.id, tok.token, user.worker_id, user.department_id
                )
            admin_id = session.scalar(text("SELECT id FROM app_user WHERE username = 'test-admin'"))
        session.close()
    app.extensions["gridgov_db"].dispose()
    out["admin"] = Account("admin", "test-admin", admin_id, admin_auth["token"], None, None)
    return out


def bearer(account: Account | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"} if account else {}

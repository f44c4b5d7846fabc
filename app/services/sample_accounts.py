"""Accounts for trying the sample street: one per role, each with a random password.

There are no default passwords: ``ensure`` makes the accounts only when there are none at all,
gives each a fresh random password, and writes them once to a file readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AppUser
from app.services import users as svc

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = ROOT / "var" / "sample_accounts.txt"

# username, role, display name, links (sample worker / department / grid codes)
SAMPLE = [
    ("admin", "admin", "系统管理员", {}),
    ("centre", "centre", "安和街道指挥中心", {"grid_code": "340188001"}),
    ("grid-chief", "grid_chief", "网格长", {"worker_code": "W00003"}),
    ("micro-chief", "micro_chief", "微网格长", {"worker_code": "W00009"}),
    ("worker", "worker", "专职网格员", {"worker_code": "W00005"}),
    ("party-member", "party_member", "党员联户", {"worker_code": "W00010"}),
    ("chengguan", "department", "安和城管中队", {"department_code": "CG-AH"}),
]


def random_password() -> str:
    """A password of 16 characters with letters and digits (and so two kinds at least)."""
    return secrets.token_urlsafe(12) + str(secrets.randbelow(10)) + "a"


def ensure(session: Session, path: Path = DEFAULT_FILE) -> list[str]:
    """Create the sample accounts when no account exists; return 'username password role' lines."""
    if session.scalar(select(func.count()).select_from(AppUser)):
        return []
    lines = []
    for username, role, name, links in SAMPLE:
        password = random_password()
        svc.create_user(session, username, role, password, display_name=name, **links)
        lines.append(f"{username:<14} {password}  ({role})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# gridgov sample accounts: username password (role)\n")
        fh.write("\n".join(lines) + "\n")
    return lines

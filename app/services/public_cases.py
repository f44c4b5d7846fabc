"""What a resident holds of a case: its public code, the reporter's secret, and the limits.

- **Public code.** Every case has a ``public_code``: 15 random Crockford base32 characters
  (75 bits, from PostgreSQL's ``gen_random_uuid()``, a strong random source) and one check
  character (Luhn mod 32), shown in groups of four: ``K3F9-ZQ2M-8W4T-PA7C``. Input is read the
  Crockford way (case, spaces and dashes ignored; O is 0, I and L are 1). Public endpoints take
  only this code: never a numeric id, never the internal ``SJ…`` code. A malformed, mistyped or
  unknown code answers the same 404.
- **Reporter's proof.** Rating (and any other resident action) needs the secret given once in the
  report's answer (only its SHA-256 is stored) or the phone number given with the report.
- **Limits.** Failed proofs and unknown codes are counted per client address in
  ``public_rate_limit`` (one atomic upsert per try, committed even when the request fails):
  ``PUBLIC_CASE_LIMIT`` tries in ``PUBLIC_CASE_WINDOW_MINUTES`` and the address waits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.errors import AppError, NotFound
from app.models import Case, CasePhoto

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_VALUE.update({"O": 0, "I": 1, "L": 1})
CODE_LENGTH = 16  # 15 random characters and the check character
_STRIP = re.compile(r"[\s\-_.]")

DEFAULT_LIMITS: dict[str, float] = {
    "PUBLIC_CASE_LIMIT": 20,
    "PUBLIC_CASE_WINDOW_MINUTES": 10,
}


class ProofRequired(AppError):
    """A resident action without the reporter's secret or phone, or with a wrong one."""

    http_status = 403
    code = "reporter_proof_required"


class TooManyTries(AppError):
    """Too many failed tries on public case endpoints from one address."""

    http_status = 429
    code = "too_many_attempts"


# ---------------------------------------------------------------- codes


def check_char(body: str) -> str:
    """Return the Luhn mod 32 check character of ``body`` (Crockford characters)."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * _VALUE[ch]
        factor = 3 - factor
        total += addend // 32 + addend % 32
    return ALPHABET[(32 - total % 32) % 32]


def new_code() -> str:
    """A fresh public code (the database makes its own the same way; this is for tools)."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH - 1))
    return body + check_char(body)


def normalize(raw: Any) -> str | None:
    """Return the stored form of a typed public code, or None when it cannot be one."""
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    s = _STRIP.sub("", raw).upper()
    if len(s) != CODE_LENGTH or any(ch not in _VALUE for ch in s):
        return None
    s = "".join(ALPHABET[_VALUE[ch]] for ch in s)
    return s if check_char(s[:-1]) == s[-1] else None


def display(code: str | None) -> str | None:
    """Group a stored code in fours for people: K3F9-ZQ2M-8W4T-PA7C."""
    if not code:
        return code
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def not_found() -> NotFound:
    # One answer for a malformed, mistyped or unknown code: nothing tells them apart.
    return NotFound("没有这个编号的事件 / no case has this code")


def find(session: Session, raw: Any) -> Case | None:
    """Return the case with this public code, or None (malformed codes included)."""
    code = normalize(raw)
    if code is None:
        return None
    return session.scalar(select(Case).where(Case.public_code == code))


def photo(session: Session, case: Case, photo_id: int) -> CasePhoto:
    """Return a photo of ``case`` or raise the same 404 as an unknown code."""
    found = session.get(CasePhoto, photo_id) if 0 < photo_id <= 2**31 - 1 else None
    if found is None or found.case_id != case.id:
        raise not_found()
    return found


# ---------------------------------------------------------------- reporter's proof


def new_secret() -> tuple[str, str]:
    """Return (the secret for the reporter, the hash to store)."""
    secret = secrets.token_urlsafe(18)
    return secret, secret_hash(secret)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _digits(phone: str | None) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def proves_reporter(case: Case, secret: Any, phone: Any) -> bool:
    """Say whether ``secret`` or ``phone`` proves the caller reported ``case``."""
    ok = False
    if isinstance(secret, str) and secret.strip() and case.reporter_secret_hash:
        ok = hmac.compare_digest(secret_hash(secret.strip()), case.reporter_secret_hash)
    if not ok and isinstance(phone, str) and case.reporter_contact:
        given, stored = _digits(phone), _digits(case.reporter_contact)
        ok = len(stored) >= 7 and hmac.compare_digest(given, stored)
    return ok


# ---------------------------------------------------------------- limits

_HIT_SQL = text(
    """
    INSERT INTO public_rate_limit (bucket, client, window_start, hits)
    VALUES (:bucket, :client, :start, 1)
    ON CONFLICT (bucket, client, window_start) DO UPDATE SET hits = public_rate_limit.hits + 1
    RETURNING hits
    """
)


def _window(limits: dict[str, Any], now: datetime) -> tuple[datetime, int]:
    seconds = max(1, int(float(limits["PUBLIC_CASE_WINDOW_MINUTES"]) * 60))
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % seconds, UTC)
    return start, seconds - epoch % seconds


def _too_many(retry: int) -> TooManyTries:
    return TooManyTries(
        "尝试过于频繁，请稍后再试 / too many failed tries on case codes from this address; "
        f"wait {max(1, retry // 60)} minute(s)",
        retry_after=retry,
    )


def reserve(
    session: Session, client: str | None, limits: dict[str, Any], *, now: datetime | None = None
) -> None:
    """Count one try of ``client`` before it is made (one atomic upsert); 429 past the limit.

    The caller commits the count at once, so it stays when the request then fails; a try that
    succeeds gives its count back (``refund``) in its own transaction. Concurrent tries each get
    their own count, so a burst cannot pass more than the limit. Rows of windows older than a
    day are removed on the way."""
    now = now or datetime.now(UTC)
    start, retry = _window(limits, now)
    client = client or "-"
    session.execute(
        text("DELETE FROM public_rate_limit WHERE window_start < :old"),
        {"old": start - timedelta(days=1)},
    )
    hits = int(
        session.scalar(_HIT_SQL, {"bucket": "public_case", "client": client, "start": start})
    )
    if hits > int(limits["PUBLIC_CASE_LIMIT"]):
        raise _too_many(retry)


def refund(
    session: Session, client: str | None, limits: dict[str, Any], *, now: datetime | None = None
) -> None:
    """Give back the count of a try that succeeded."""
    now = now or datetime.now(UTC)
    start, _ = _window(limits, now)
    session.execute(
        text(
            "UPDATE public_rate_limit SET hits = greatest(hits - 1, 0) "
            "WHERE bucket = 'public_case' AND client = :client AND window_start = :start"
        ),
        {"client": client or "-", "start": start},
    )

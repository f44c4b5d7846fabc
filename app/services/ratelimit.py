"""Rate limits per address kept in the database (``rate_hit``), so every worker process and
every server behind the proxy shares them. Counting is atomic: an advisory lock per (bucket,
key) is held from the count to the commit of the new hit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import AppError


class RateLimited(AppError):
    """Too many uses of a limited action from one address."""

    http_status = 429
    code = "too_many_requests"


def hit(
    session: Session,
    bucket: str,
    key: str,
    *,
    weight: int,
    limit: int,
    window: timedelta,
    what: str,
    now: datetime | None = None,
) -> None:
    """Count ``weight`` uses of ``bucket`` by ``key``; raise ``RateLimited`` (429) when that
    would pass ``limit`` within ``window``. The hit is committed at once (before the work it
    pays for), so a request that then fails still counts."""
    now = now or datetime.now(UTC)
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7304))"),
        {"k": f"{bucket}:{key}"},
    )
    used = session.scalar(
        text(
            "SELECT coalesce(sum(weight), 0) FROM rate_hit "
            "WHERE bucket = :b AND key = :k AND at > :since"
        ),
        {"b": bucket, "k": key, "since": now - window},
    )
    if int(used) + weight > limit:
        session.rollback()
        minutes = max(1, int(window.total_seconds() // 60))
        raise RateLimited(
            f"操作过于频繁，请稍后再试 / too many {what} from this address: at most {limit} "
            f"in {minutes} minutes",
            retry_after=int(window.total_seconds()),
        )
    session.execute(
        text("INSERT INTO rate_hit (bucket, key, at, weight) VALUES (:b, :k, :at, :w)"),
        {"b": bucket, "k": key, "at": now, "w": weight},
    )
    # Old hits go with the new one (a few rows at most each time).
    session.execute(
        text("DELETE FROM rate_hit WHERE bucket = :b AND key = :k AND at <= :since"),
        {"b": bucket, "k": key, "since": now - window},
    )
    session.commit()

"""Retention of field work's personal data: patrol points and tracks, visit and check-in
positions (the ``track_days`` / ``visit_position_days`` settings; ``gridgov retention run``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.services import visits as visit_svc
from app.services.visits import local_text


def retention_run(
    session: Session, *, now: datetime | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Delete the points of old patrols and clear old visit and check-in positions (the
    ``track_days`` / ``visit_position_days`` settings); return what was (or would be) done."""
    now = now or datetime.now(UTC)
    settings = visit_svc.get_settings(session)
    track_cut = now - timedelta(days=int(settings["track_days"]))
    visit_cut = now - timedelta(days=int(settings["visit_position_days"]))
    old = "SELECT id FROM patrol WHERE started_at < :tc AND purged_at IS NULL AND ended_at IS NOT NULL"
    p = {"tc": track_cut, "vc": visit_cut, "now": now}
    counts = {
        "patrols": session.scalar(text(f"SELECT count(*) FROM ({old}) o"), p),
        "points": session.scalar(
            text(f"SELECT count(*) FROM patrol_point WHERE patrol_id IN ({old})"), p
        ),
        "dropped_points": session.scalar(
            text(f"SELECT count(*) FROM patrol_drop WHERE patrol_id IN ({old})"), p
        ),
        "visit_positions": session.scalar(
            text(
                "SELECT count(*) FROM visit WHERE visited_at < :vc AND (geom IS NOT NULL OR reported_x IS NOT NULL)"
            ),
            p,
        ),
        "checkin_positions": session.scalar(
            text("SELECT count(*) FROM checkin WHERE checked_at < :vc AND geom IS NOT NULL"), p
        ),
    }
    if not dry_run:
        session.execute(text(f"DELETE FROM patrol_point WHERE patrol_id IN ({old})"), p)
        session.execute(text(f"DELETE FROM patrol_drop WHERE patrol_id IN ({old})"), p)
        session.execute(text(f"DELETE FROM patrol_batch WHERE patrol_id IN ({old})"), p)
        session.execute(
            text(
                f"UPDATE patrol SET track = NULL, trace = NULL, reach = NULL, reach_m = NULL, purged_at = :now WHERE id IN ({old})"
            ),
            p,
        )
        session.execute(
            text(
                """UPDATE visit SET geom = NULL, reported_x = NULL, reported_y = NULL,
                       accuracy_m = NULL
                   WHERE visited_at < :vc AND (geom IS NOT NULL OR reported_x IS NOT NULL)"""
            ),
            p,
        )
        session.execute(
            text(
                "UPDATE checkin SET geom = NULL, accuracy_m = NULL WHERE checked_at < :vc AND geom IS NOT NULL"
            ),
            p,
        )
    return {
        "dry_run": dry_run,
        "track_days": int(settings["track_days"]),
        "visit_position_days": int(settings["visit_position_days"]),
        "tracks_before": local_text(track_cut),
        "positions_before": local_text(visit_cut),
        **counts,
    }

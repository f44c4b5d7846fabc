"""Vector tiles of the e-map, cut by PostGIS and cached per scope and data version.

``tile(session, principal, layer, z, x, y)`` returns gzipped MVT bytes. The tile functions
(migration 0010) take the caller's scope, so a tile holds only what the caller may see; the
cache key holds the scope (a digest of its grid ids) and the layer's data version, which
statement triggers raise on every change — an edit, split, merge, division or undo shows on the
next tile request, with no explicit invalidation. Grid tiles, the dearest to encode, are also
kept in PostgreSQL (``tile_cache``), shared by every app process and invalidated tile by tile by
a trigger when grids change (``shared_tile``).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth.policy import Principal, case_scope, grid_roots, grid_scope, outline_scope
from app.errors import BadParameter, NotFound
from app.timing import Phases

MAX_ZOOM = 22
# Layers whose encoded tiles are kept in PostgreSQL, shared by every app process (revision
# 0022); their invalidation is precise, tile by tile. The others are cheap to cut.
SHARED = frozenset({"grids"})
# The advisory lock of the shared cache (revision 0022 takes it exclusively on every change).
CACHE_LOCK = 7_342_001_022
# The advisory lock one app process holds while it trims the shared cache (others skip it).
EVICT_LOCK = 7_342_001_025
# A cached tile's last use is written again only when older than this (a read stays a read).
USED_EVERY = "5 minutes"
# A process trims the shared cache after storing this share of its limit; it trims it to
# TRIM_TO of the limit, so that trimming stays rare.
CHECK_SHARE = 16
TRIM_TO = 0.9
# Which data version a tile layer depends on.
LAYERS = {
    "grids": "grids",
    "households": "households",
    "points": "points",
    "cases": "cases",
    "overrides": "overrides",
    "basemap": "basemap",
}


@dataclass(frozen=True)
class Scope:
    """What one caller's tiles hold: a digest names it in the cache."""

    grids: tuple[int, ...] | None  # None: every grid
    outline: tuple[int, ...]
    member: int | None
    case_everything: bool
    case_grids: tuple[int, ...] | None
    case_worker: int | None
    case_department: int | None
    # The grids assigned, whose subtrees are ``grids`` (None: the tile probes each grid).
    roots: tuple[int, ...] | None = None

    def key(self, layer: str) -> str:
        if layer == "basemap":
            return "all"
        if layer == "cases":
            parts: tuple[Any, ...] = (
                self.case_everything,
                self.case_grids,
                self.case_worker,
                self.case_department,
            )
        elif layer == "households":
            parts = (self.grids, self.member)
        elif layer == "grids":
            parts = (self.grids, self.outline)
        else:
            parts = (self.grids,)
        return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


def scope_of(session: Session, p: Principal) -> Scope:
    """The scope of ``p``'s tiles."""
    grids = grid_scope(session, p)
    cs = case_scope(session, p)
    return Scope(
        grids=None if grids is None else tuple(sorted(grids)),
        roots=grid_roots(session, p),
        outline=() if grids is None else tuple(sorted(outline_scope(session, p))),
        member=p.worker_id if p.role == "party_member" else None,
        case_everything=cs.everything,
        case_grids=None if cs.grid_ids is None else tuple(sorted(cs.grid_ids)),
        case_worker=cs.worker_id,
        case_department=cs.department_id,
    )


class TileCache:
    """A bounded LRU of gzipped tiles, by (layer, z, x, y, scope digest, data version)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self.lock:
            value = self.items.get(key)
            if value is None:
                self.misses += 1
                return None
            self.items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[Any, ...], value: bytes) -> None:
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.size += len(value)
            while self.size > self.max_bytes and self.items:
                _, old = self.items.popitem(last=False)
                self.size -= len(old)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.size = 0


CACHE = TileCache()


def check_tile(z: int, x: int, y: int) -> None:
    """Refuse a tile address outside the pyramid."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadParameter("z", f"zoom {z} is outside 0–{MAX_ZOOM}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise BadParameter("x/y", f"tile {x}/{y} does not exist at zoom {z} (0–{n - 1})")


def data_version(session: Session, layer: str) -> str:
    """The layer's data version: its counter and the time of the change that raised it (a
    counter alone could come back after a rolled-back change)."""
    row = session.execute(
        text("SELECT version, changed_at FROM map_layer_version WHERE layer = :l"),
        {"l": LAYERS[layer]},
    ).first()
    version = f"{row[0]}@{row[1].timestamp()}" if row else "0"
    if layer == "cases":
        # A case turns overdue with time alone, and a renamed category changes its tooltip:
        # cached case tiles last a minute at most.
        version += f"/{int(time.time() // 60)}"
    return version


def render(session: Session, scope: Scope, layer: str, z: int, x: int, y: int) -> bytes:
    """Cut one tile in PostGIS (raw MVT bytes, possibly empty)."""
    arr = "CAST(:grids AS integer[])"
    calls = {
        "grids": (
            f"SELECT gridgov_tile_grids(:z, :x, :y, {arr}, CAST(:outline AS integer[]))",
            {"grids": id_array_text(scope.grids), "outline": id_array_text(scope.outline)},
        ),
        "households": (
            f"SELECT gridgov_tile_households(:z, :x, :y, {arr}, CAST(:member AS integer),"
            " CAST(:roots AS integer[]))",
            {
                "grids": id_array_text(scope.grids),
                "member": scope.member,
                "roots": id_array_text(scope.roots),
            },
        ),
        "points": (
            f"SELECT gridgov_tile_points(:z, :x, :y, {arr})",
            {"grids": id_array_text(scope.grids)},
        ),
        "overrides": (
            f"SELECT gridgov_tile_overrides(:z, :x, :y, {arr})",
            {"grids": id_array_text(scope.grids)},
        ),
        "cases": (
            "SELECT gridgov_tile_cases(:z, :x, :y, :every, CAST(:cgrids AS integer[]),"
            " CAST(:worker AS integer), CAST(:dept AS integer))",
            {
                "every": scope.case_everything,
                "cgrids": id_array_text(scope.case_grids),
                "worker": scope.case_worker,
                "dept": scope.case_department,
            },
        ),
        "basemap": ("SELECT gridgov_tile_basemap(:z, :x, :y)", {}),
    }
    sql, params = calls[layer]
    data = session.scalar(text(sql), {"z": z, "x": x, "y": y, **params})
    return bytes(data or b"")


def id_array_text(ids: Sequence[int] | None) -> str | None:
    """An id list as PostgreSQL's array text (``{1,2,3}``), for ``CAST(… AS integer[])``: a
    street's thousands of ids pass in a fraction of a millisecond, where the driver's list
    adapter took about 6 ms for 6,826."""
    return None if ids is None else "{" + ",".join(str(int(i)) for i in ids) + "}"


def tile(
    session: Session,
    p: Principal,
    layer: str,
    z: int,
    x: int,
    y: int,
    cache_limit: int | None = None,
    phases: Phases | None = None,
) -> tuple[bytes, str]:
    """Return the gzipped tile for ``p`` and its entity tag (cached per scope and version).
    ``cache_limit`` bounds the shared cache in PostgreSQL (bytes; None: no bound, 0: none
    stored); ``phases`` gets the time of each step (``version``, ``lookup``, ``cut``, ``gzip``,
    ``store``, ``trim``)."""
    if layer not in LAYERS:
        raise NotFound(f"no tile layer '{layer}' (layers: {', '.join(LAYERS)})")
    check_tile(z, x, y)
    phases = phases or Phases()
    with phases.phase("version"):
        version = data_version(session, layer)
        scope = scope_of(session, p)
    key = (layer, z, x, y, scope.key(layer), version)
    etag = hashlib.blake2b(repr(key).encode(), digest_size=10).hexdigest()
    cached = CACHE.get(key)
    if cached is not None:
        return cached, etag
    if layer in SHARED:
        body = shared_tile(session, scope, layer, z, x, y, cache_limit, phases)
    else:
        body = cut(session, scope, layer, z, x, y, phases)
    CACHE.put(key, body)
    return body, etag


def cut(
    session: Session, scope: Scope, layer: str, z: int, x: int, y: int, phases: Phases
) -> bytes:
    """Render the tile and gzip it, timing both."""
    with phases.phase("cut"):
        raw = render(session, scope, layer, z, x, y)
    with phases.phase("gzip"):
        return encode(raw)


def encode(raw: bytes) -> bytes:
    # Level 1: a dense 650 KB grid tile compresses in a fifth of level 6's time to 12 % more.
    return gzip.compress(raw, compresslevel=1, mtime=0)


class Stored:
    """Bytes this process has stored in the shared cache since it last trimmed it."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lock = threading.Lock()

    def add(self, n: int, limit: int) -> bool:
        """Count ``n`` bytes stored; True when the cache is due for a trim."""
        with self.lock:
            self.bytes += n
            if self.bytes < max(limit // CHECK_SHARE, 1):
                return False
            self.bytes = 0
            return True

    def reset(self) -> None:
        with self.lock:
            self.bytes = 0


STORED = Stored()


def shared_tile(
    session: Session,
    scope: Scope,
    layer: str,
    z: int,
    x: int,
    y: int,
    limit: int | None = None,
    phases: Phases | None = None,
) -> bytes:
    """The gzipped tile from the shared cache in PostgreSQL (``tile_cache``, revision 0022), or
    rendered and stored there. A grid change deletes the cached tiles it touches (a trigger on
    ``grid_tile``) under an advisory lock that a writer holds shared from before its render
    until its commit, so no tile cut from data older than a committed change is ever stored;
    when a change holds the lock the tile is served without being stored.

    ``limit`` bounds the cache (bytes; None: no bound; 0: nothing stored): after storing a
    sixteenth of it, a process deletes the tiles used longest ago (``trim``). A read marks its
    tile used when the mark is older than ``USED_EVERY``, skipping a row another transaction
    holds: a tile request never waits for the cache."""
    where = {"l": layer, "z": z, "x": x, "y": y, "s": scope.key(layer)}
    key = "layer = :l AND z = :z AND x = :x AND y = :y AND scope = :s"
    replica = bool(session.info.get("replica"))
    phases = phases or Phases()
    with phases.phase("lookup"):
        row = session.execute(
            text(
                f"SELECT body, used_at < clock_timestamp() - interval '{USED_EVERY}' AS stale "
                f"FROM tile_cache WHERE {key}"
            ),
            where,
        ).first()
    if row is not None:
        if row.stale and not replica:
            with phases.phase("store"):
                session.commit()  # what the request wrote so far, waiting for the disk
                expendable(session)
                session.execute(
                    text(
                        "UPDATE tile_cache SET used_at = clock_timestamp() WHERE ctid = "
                        f"(SELECT ctid FROM tile_cache WHERE {key} FOR UPDATE SKIP LOCKED)"
                    ),
                    where,
                )
                session.commit()
        return bytes(row.body)
    # A statement of its own, so that the render below reads a snapshot taken after the lock.
    # A read replica serves the tile without storing it (the primary's cache reaches it by
    # replication).
    if replica or limit == 0:
        return cut(session, scope, layer, z, x, y, phases)
    with phases.phase("lookup"):
        # What the request wrote so far commits waiting for the disk; the transaction of the
        # lock, the cut and the stored tile writes nothing else.
        session.commit()
        locked = session.scalar(
            text("SELECT pg_try_advisory_xact_lock_shared(:k)"), {"k": CACHE_LOCK}
        )
    fresh = cut(session, scope, layer, z, x, y, phases)
    if locked:
        with phases.phase("store"):
            expendable(session)
            session.execute(
                text(
                    "INSERT INTO tile_cache (layer, z, x, y, scope, body, size, used_at) "
                    "VALUES (:l, :z, :x, :y, :s, :b, :n, clock_timestamp()) "
                    "ON CONFLICT DO NOTHING"
                ),
                {**where, "b": fresh, "n": len(fresh)},
            )
            session.commit()
        if limit is not None and STORED.add(len(fresh), limit):
            with phases.phase("trim"):
                trim(session, limit)
    return fresh


def expendable(session: Session) -> None:
    """Let the open transaction, which writes nothing but ``tile_cache`` rows, commit without
    waiting for the write-ahead log to reach the disk (on a busy disk that wait held a cold
    tile's answer for hundreds of milliseconds); ``SET LOCAL`` ends with it.

    Safe: a crash loses only the tail of the log after its last flush, so a cache row can be
    lost, and the tile is cut again; it can never outlive the edit that deleted it. The edit's
    trigger deletes the rows it touches under ``CACHE_LOCK`` held exclusively, after every
    transaction that stored a tile under the lock held shared has committed: a stored row's
    commit lies in the log before the edit's, whose commit waits for the disk and so flushes
    it too: after a crash the edit is never there without the row, which its replay deletes
    again, and without the edit the row was cut from the data as it is again. The caller
    commits what the request wrote before (a session's keep-alive), which waits as usual: this
    holds for nothing but the cache."""
    session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def trim(session: Session, limit: int) -> int:
    """When the shared cache holds more than ``limit`` bytes, delete the tiles used longest ago
    until it holds ``TRIM_TO`` of it; return the tiles deleted. One process trims at a time (the
    others skip it) and rows another transaction holds are skipped: nothing waits."""
    if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": EVICT_LOCK}):
        session.commit()
        return 0
    deleted = session.execute(
        text(
            """
            WITH ranked AS (
              SELECT layer, z, x, y, scope, sum(size) OVER () AS total,
                     sum(size) OVER (ORDER BY used_at DESC, layer, z, x, y, scope) AS kept
              FROM tile_cache),
            victims AS (
              SELECT c.ctid AS row FROM tile_cache c
              JOIN ranked r USING (layer, z, x, y, scope)
              WHERE r.total > :limit AND r.kept > :keep
              FOR UPDATE OF c SKIP LOCKED)
            DELETE FROM tile_cache WHERE ctid = ANY(ARRAY(SELECT row FROM victims))
            """
        ),
        {"limit": limit, "keep": int(limit * TRIM_TO)},
    ).rowcount
    session.commit()
    return int(deleted or 0)

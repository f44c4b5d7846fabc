"""The shared cache of grid tiles in PostgreSQL stays under its size limit
(``TILE_CACHE_MAX_MB``): the tiles used longest ago are deleted first, a tile read again counts
as used, and a limit of 0 stores nothing."""

from __future__ import annotations

from sqlalchemy import text

from app.services import tiles as svc
from tests.web.test_tiles import OWN_MICRO, STREET_A, STREET_B, centre_of, decode, tile_of


def stored(db_session) -> dict[tuple[int, int, int], int]:  # type: ignore[no-untyped-def]
    return {
        (z, x, y): size
        for z, x, y, size in db_session.execute(
            text("SELECT z, x, y, size FROM tile_cache WHERE layer = 'grids'")
        )
    }


def addresses(db_session) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """Distinct grid tiles over the sample, each holding some grids."""
    out: list[tuple[int, int, int]] = []
    for place in (OWN_MICRO, STREET_A, STREET_B):
        lon, lat = centre_of(db_session, place)
        for z in (12, 13, 14, 15, 16, 17):
            t = tile_of(lon, lat, z)
            if t not in out:
                out.append(t)
    return out


def test_the_shared_tile_cache_keeps_under_its_limit_dropping_the_least_recently_used(  # type: ignore[no-untyped-def]
    app, client, db_session
) -> None:
    db_session.execute(text("DELETE FROM tile_cache"))
    svc.CACHE.clear()
    svc.STORED.reset()
    tiles = addresses(db_session)
    assert len(tiles) >= 8
    first, rest = tiles[:4], tiles[4:]
    for z, x, y in first:
        decode(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt"))
    sizes = stored(db_session)
    assert set(sizes) == set(first)
    assert all(n > 0 for n in sizes.values())
    # Every tile was last used long ago, the first one longest; then it is read again (by a
    # process with an empty memory cache): it counts as used now.
    for k, (z, x, y) in enumerate(first):
        db_session.execute(
            text(
                "UPDATE tile_cache SET used_at = clock_timestamp() - interval '1 hour' "
                "- make_interval(mins => :k) WHERE z = :z AND x = :x AND y = :y"
            ),
            {"k": 10 - k, "z": z, "x": x, "y": y},
        )
    svc.CACHE.clear()
    decode(client.get("/tiles/grids/{}/{}/{}.mvt".format(*first[0])))
    # A limit that holds about three of these tiles.
    limit = 3 * max(sizes.values()) + 1
    app.config["TILE_CACHE_MAX_MB"] = limit / (1024 * 1024)
    for z, x, y in rest:
        decode(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt"))
        now = stored(db_session)
        # Trimmed after every sixteenth of the limit stored: never above it by more.
        assert sum(now.values()) <= limit + limit // svc.CHECK_SHARE + max(sizes.values())
    now = stored(db_session)
    assert sum(now.values()) <= limit + limit // svc.CHECK_SHARE + max(sizes.values())
    assert len(now) < len(tiles), "nothing was dropped"
    assert rest[-1] in now, "the tile just cut is kept"
    # Of the first four, the one read again is dropped last.
    dropped = [t for t in first if t not in now]
    assert dropped and (first[0] in now or set(first) <= set(dropped))
    assert first[1] not in now

    # A limit of 0: tiles are served, nothing is stored.
    db_session.execute(text("DELETE FROM tile_cache"))
    svc.CACHE.clear()
    app.config["TILE_CACHE_MAX_MB"] = 0
    for z, x, y in tiles[:3]:
        decode(client.get(f"/tiles/grids/{z}/{x}/{y}.mvt"))
    assert stored(db_session) == {}
    svc.STORED.reset()

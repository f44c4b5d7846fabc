"""The synthetic cities of the benchmarks, each built once and shared by every benchmark.

A city is ``gis.synthetic.city(micro, households, seed=3, buildings=True)``: grids of four
levels, households with an address each (a building's households stand together in one or two
micro-grids), roads and building footprints. It is written to files and imported with the
``gridgov import`` commands (grids, households, basemap), into a database of the private
cluster named after its size and seed (``gridgov_city_100000_2000000_s3``).

The database is kept between runs. It is reused as long as its stamp (``COMMENT ON DATABASE``)
names the same version of the generator, the importer and the files written here (``FORMAT``); otherwise it is built
again. Migrations added since are applied to a kept city as to any database (``upgrade``).
The stamp also holds the build's figures (the generation and import times, the load then), so
a benchmark that reports the import times reads them from when they were measured.

Benchmarks that only read use the city database itself (:func:`city_database`); one that
writes into it (workers, cases) takes its own copy, a file-level ``CREATE DATABASE … TEMPLATE``
(:func:`city_copy`), which takes seconds rather than the build's minutes.

    python bench/city.py [--micro 100000] [--households 2000000]   # build (or find) one city
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import db_roles  # noqa: E402
from app import migrate as mig  # noqa: E402
from app.embedded_pg import OWNER_ROLE, default_cluster  # noqa: E402

GRIDGOV = str(Path(sys.executable).with_name("gridgov"))
SEED = 3
STAMP = "gridgov bench city"
# The sources a city depends on: when one changes, every kept city is built again. FORMAT names
# the files this module writes: raise it when they change.
SOURCES = ("gis/synthetic.py", "app/services/importer")
FORMAT = 1
# The two sizes the benchmarks use.
LARGE = (100_000, 2_000_000)
SMALL = (10_000, 200_000)


def code_version() -> str:
    """A digest of the generator, the importer and the format of the files written here."""
    h = hashlib.sha256(f"format {FORMAT}".encode())
    for src in SOURCES:
        path = ROOT / src
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def database_name(micro: int, households: int, seed: int = SEED) -> str:
    return f"gridgov_city_{micro}_{households}_s{seed}"


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕鹏辉建国文斌宇浩凯"
ESTATE = (
    "春晖馨苑和园锦绣华府翠湖金桂银杏丽景嘉禾瑞祥福安康宁泰和盛世新城明珠阳光绿洲碧水蓝天怡景雅居"
)
SUFFIX = ("小区", "花园", "家园")


def estate_name(i: int) -> str:
    n = len(ESTATE)
    return ESTATE[i % n] + ESTATE[(i // n) % n] + ESTATE[(i // (n * n)) % n] + SUFFIX[i % 3]


def address(k: int, per_estate: int = 400) -> str:
    """The k-th household's address: street, community, estate, building, unit and room."""
    e = k // per_estate
    r = k % per_estate
    building, unit, room = r // 40 + 1, (r // 8) % 5 + 1, (r % 8) // 2 * 100 + 101 + r % 2
    return f"滨江街道第{e % 60 + 1}社区{estate_name(e)}{building}栋{unit}单元{room}室"


def person_name(i: int) -> str:
    rng = random.Random(i)
    return rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if i % 3 else "")


def read_stamp(cluster, name: str) -> dict | None:  # type: ignore[no-untyped-def]
    """The stamp of a kept city: {"version", "figures"}, or None (no such database or stamp)."""
    text = cluster.psql(
        "postgres",
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        f"WHERE datname = {db_roles.literal(name)}",
    )
    if not text or not text.startswith(STAMP + " "):
        return None
    try:
        return json.loads(text[len(STAMP) + 1 :])
    except ValueError:
        return None


def _cli(url: str, *args: str) -> float:
    started = time.perf_counter()
    env = dict(os.environ, GRIDGOV_DATABASE_URL=url)
    res = subprocess.run([GRIDGOV, *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"gridgov {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return time.perf_counter() - started


def write_files(folder: Path, micro: int, households: int, seed: int) -> dict[str, float]:
    """Write grids.geojson, households.csv and basemap.geojson of the city."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    from gis.synthetic import city

    started = time.perf_counter()
    c = city(micro, households, seed=seed, buildings=True)
    gpd.GeoDataFrame(
        {
            "code": [g[0] for g in c.grids],
            "name": [g[1] for g in c.grids],
            "level": [g[2] for g in c.grids],
            "parent_code": [g[3] or "" for g in c.grids],
        },
        geometry=[g[4] for g in c.grids],
        crs=4326,
    ).to_file(folder / "grids.geojson", driver="GeoJSON", COORDINATE_PRECISION=7)
    n = len(c.households)
    # Addresses follow the micro-grids: a building's households stand together.
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(c.household_grid, kind="stable")] = np.arange(n)
    pd.DataFrame(
        {
            "lon": c.households[:, 0].round(7),
            "lat": c.households[:, 1].round(7),
            "address": [address(int(k)) for k in rank],
            "people": np.random.default_rng(seed).integers(1, 6, n),
            "head_name": [person_name(k + 7) for k in range(n)],
            "head_phone": "13900000000",
            "tags": "",
        }
    ).to_csv(folder / "households.csv", index=False)
    basemap = gpd.GeoDataFrame(
        {
            "kind": ["road"] * len(c.roads) + ["building"] * len(c.buildings),
            "class": [r[0] for r in c.roads] + ["residential"] * len(c.buildings),
        },
        geometry=[r[1] for r in c.roads] + list(c.buildings),
        crs=4326,
    )
    basemap.to_file(folder / "basemap.geojson", driver="GeoJSON", COORDINATE_PRECISION=7)
    return {
        "generate_s": time.perf_counter() - started,
        "grids": len(c.grids),
        "micro": sum(1 for g in c.grids if g[2] == 4),
        "households": n,
        "basemap": len(basemap),
    }


def build(cluster, name: str, micro: int, households: int, seed: int) -> dict:  # type: ignore[no-untyped-def]
    """Build the city into database ``name``; return its figures."""
    from sqlalchemy import create_engine, text

    url = cluster.recreate_database(name)
    mig.upgrade(cluster.owner_url(name), app_url=url)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures: dict = write_files(folder, micro, households, seed)
        print(
            f"city {name}: generated {figures['grids']:,} grids, {figures['households']:,} "
            f"households in {figures['generate_s']:.0f} s",
            flush=True,
        )
        figures["import_grids_s"] = _cli(url, "import", "grids", str(folder / "grids.geojson"))
        print(f"city {name}: grids imported in {figures['import_grids_s']:.1f} s", flush=True)
        owner = create_engine(cluster.owner_url(name))
        with owner.begin() as conn:  # the trigram index is built once after the bulk load
            conn.execute(text("DROP INDEX ix_household_search_trgm"))
        figures["import_households_s"] = _cli(
            url, "import", "households", str(folder / "households.csv")
        )
        print(
            f"city {name}: households imported in {figures['import_households_s']:.1f} s",
            flush=True,
        )
        started = time.perf_counter()
        with owner.begin() as conn:
            conn.execute(text("SET maintenance_work_mem = '256MB'"))
            conn.execute(
                text(
                    "CREATE INDEX ix_household_search_trgm ON household USING gin "
                    "((household_search_text(address, building, unit, room)) gin_trgm_ops)"
                )
            )
        figures["household_index_s"] = time.perf_counter() - started
        owner.dispose()
        figures["import_basemap_s"] = _cli(
            url, "import", "basemap", str(folder / "basemap.geojson")
        )
        print(f"city {name}: basemap imported in {figures['import_basemap_s']:.1f} s", flush=True)
    cluster.psql(name, "VACUUM ANALYZE")
    load_after = os.getloadavg()
    figures["load"] = f"{load_before[0]:.1f}–{load_after[0]:.1f} / {os.cpu_count()} cores"
    figures["built"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return figures


def city_database(micro: int, households: int, *, seed: int = SEED) -> tuple[str, dict]:
    """The URL (as the app's role) of the kept city of this size and its figures; built first
    when missing or made by another version of the code."""
    cluster = default_cluster()
    cluster.start()
    name = database_name(micro, households, seed)
    version = code_version()
    stamp = read_stamp(cluster, name)
    if stamp is not None and stamp.get("version") == version:
        mig.upgrade(cluster.owner_url(name), app_url=cluster.url(name))
        print(f"city {name}: kept (built {stamp['figures'].get('built', '?')})", flush=True)
        return cluster.url(name), stamp["figures"]
    started = time.perf_counter()
    figures = build(cluster, name, micro, households, seed)
    figures["build_s"] = time.perf_counter() - started
    text = json.dumps({"version": version, "figures": figures}, ensure_ascii=False)
    cluster.psql(
        "postgres",
        f"COMMENT ON DATABASE {db_roles.ident(name)} IS {db_roles.literal(STAMP + ' ' + text)}",
    )
    print(f"city {name}: built in {figures['build_s']:.0f} s", flush=True)
    return cluster.url(name), figures


def city_copy(micro: int, households: int, copy: str, *, seed: int = SEED) -> tuple[str, dict]:
    """A fresh copy, database ``copy``, of the kept city (built first if needed), for a
    benchmark that writes into it; return its URL and the city's figures."""
    _, figures = city_database(micro, households, seed=seed)
    cluster = default_cluster()
    name = database_name(micro, households, seed)
    started = time.perf_counter()
    cluster.psql("postgres", f"DROP DATABASE IF EXISTS {db_roles.ident(copy)} WITH (FORCE)")
    # A template must have no other session: end any left by a crashed run.
    cluster.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = {db_roles.literal(name)} AND pid <> pg_backend_pid()",
    )
    cluster.psql(
        "postgres",
        f"CREATE DATABASE {db_roles.ident(copy)} TEMPLATE {db_roles.ident(name)} "
        f"OWNER {db_roles.ident(OWNER_ROLE)}",
    )
    cluster.ensure_database(copy)
    print(f"city {name}: copied to {copy} in {time.perf_counter() - started:.0f} s", flush=True)
    return cluster.url(copy), figures


def build_all(sizes: tuple[tuple[int, int], ...] = (SMALL, LARGE)) -> None:
    """Build (or find) the cities the benchmarks share (both unless told which)."""
    for micro, households in sizes:
        city_database(micro, households)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", type=int, default=LARGE[0])
    parser.add_argument("--households", type=int, default=LARGE[1])
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    url, figures = city_database(args.micro, args.households, seed=args.seed)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""The ``gridgov`` command: database, migrations, imports and exports, and the web server.

Why one module of this size: it is the list of the commands and their options, each a few lines
that parse the command line and call one service; in one place the whole command line reads as
``gridgov --help`` shows it.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from pathlib import Path

import click

from app.embedded_pg import DB_NAME, EmbeddedDatabaseError, default_cluster
from app.errors import AppError
from gis.errors import GisError

LOGGER = logging.getLogger(__name__)


def _app():  # type: ignore[no-untyped-def]
    from app import create_app
    from app.services.basemap import BasemapConfigError

    try:
        return create_app()
    except EmbeddedDatabaseError as exc:
        raise click.ClickException(str(exc)) from exc
    except BasemapConfigError as exc:
        raise click.ClickException(f"basemap settings: {exc}") from exc


def _fail(exc: AppError | GisError) -> click.ClickException:
    lines = [exc.message]
    for p in (exc.details.get("problems") or [])[:50]:
        # A problem is {"where", "reason"} (imports) or a sentence naming its row (calendars).
        lines.append(
            f"  {p.get('where', '')}: {p.get('reason', '')}" if isinstance(p, dict) else f"  {p}"
        )
    return click.ClickException("\n".join(lines))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """Grid-governance e-map platform (网格化服务管理电子地图)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.group()
def db() -> None:
    """Manage the private PostgreSQL + PostGIS cluster (used when DATABASE_URL is not set)."""


@db.command("start")
@click.option(
    "--replicas",
    default=0,
    show_default=True,
    type=click.IntRange(0, 9),
    help="Also start this many streaming replicas (made with pg_basebackup on first use).",
)
def db_start(replicas: int) -> None:
    """Start the private cluster (creating it on first use) and create the database."""
    from app import embedded_replica

    cluster = default_cluster()
    try:
        cluster.start()
        started = embedded_replica.start_replicas(cluster, replicas)
    except EmbeddedDatabaseError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"running: {cluster.url()}")
    click.echo(f"owner (migrations): {cluster.owner_url()}")
    for r in started:
        click.echo(f"{r.name} (reads): {r.url()}")


@db.command("stop")
def db_stop() -> None:
    """Stop the private cluster."""
    from app import embedded_replica

    cluster = default_cluster()
    for name in embedded_replica.stop_replicas(cluster):
        click.echo(f"{name} stopped")
    click.echo("stopped" if cluster.stop() else "not running")


@db.command("status")
def db_status() -> None:
    """Say where the private cluster is and whether it runs, and each replica with its lag."""
    from app import embedded_replica

    cluster = default_cluster()
    found = cluster.status()
    found["replicas"] = embedded_replica.status(cluster)
    click.echo(json.dumps(found, indent=2))


def _database_urls(into: str | None = None) -> tuple[str, str]:
    """The (owner, app) URLs of the configured database without starting the app (which would
    upgrade the schema): the environment's, else the private cluster's (``into``: another
    database of the private cluster, created empty when missing)."""
    from app.config import from_environment

    env = from_environment()
    url = env.get("DATABASE_URL")
    if url:
        if into:
            raise click.ClickException(
                "--into 只用于内置数据库；外部数据库请在 DATABASE_URL 中指定库名"
            )
        return env.get("MIGRATION_DATABASE_URL") or url, url
    cluster = default_cluster()
    try:
        cluster.start()
        if into:
            cluster.ensure_database(into)
    except EmbeddedDatabaseError as exc:
        raise click.ClickException(str(exc)) from exc
    name = into or DB_NAME
    return cluster.owner_url(name), cluster.url(name)


@db.command("backup")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(archive: Path) -> None:
    """Back up the whole database (pg_dump) into ARCHIVE, with ARCHIVE.manifest.json beside it
    (row counts and checksums of every table, from the same snapshot)."""
    from app import backup as bk

    owner, _ = _database_urls()
    try:
        manifest = bk.backup(owner, archive)
    except bk.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    tables = manifest["tables"]
    click.echo(
        f"备份完成：{archive}（{len(tables)} 张表，"
        f"网格 {tables.get('grid', {}).get('rows', 0)} 行，"
        f"住户 {tables.get('household', {}).get('rows', 0)} 行，"
        f"事件 {tables.get('case', {}).get('rows', 0)} 行）；清单：{bk.manifest_path(archive)}"
    )


@db.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--into", help="A database of the private cluster to restore into (created when missing)."
)
def db_restore(archive: Path, into: str | None) -> None:
    """Restore ARCHIVE into an empty database and check every table against its manifest."""
    from app import backup as bk

    owner, app_url = _database_urls(into)
    try:
        result = bk.restore(archive, owner, app_url)
    except bk.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    tables = result["tables"]
    check = "与备份清单逐表核对一致" if result["checked"] else "未找到备份清单，未核对"
    click.echo(f"恢复完成：{len(tables)} 张表，{check}")


@main.command()
@click.option("--to", "target", default="heads", show_default=True, help="Revision to upgrade to.")
def migrate(target: str) -> None:
    """Upgrade the schema (Alembic) to the newest revision.

    Runs as MIGRATION_DATABASE_URL's role (the embedded cluster's owner role), then grants
    DATABASE_URL's role its privileges."""
    from app import migrate as mig

    app = _app()
    mig.upgrade_app(app.config, target)
    click.echo(f"schema at {target}")


def _progress():  # type: ignore[no-untyped-def]
    last = {"t": 0.0}

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last["t"] > 0.5:
            last["t"] = now
            pct = 100.0 * done / total if total else 100.0
            click.echo(f"  {stage}: {done}/{total} ({pct:.0f}%)", err=True)

    return report


def _sample_history(session) -> None:  # type: ignore[no-untyped-def]
    """Add the sample's months of case history unless there are cases already."""
    from sqlalchemy import text

    from app.db import transaction
    from app.services import sample_history

    if session.scalar(text('SELECT EXISTS (SELECT 1 FROM "case")')):
        return
    click.echo("writing the sample's case history (three months of cases) …")
    with transaction(session):
        counts = sample_history.generate(session)
    click.echo("sample cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@main.command("load-sample")
@click.option("--force", is_flag=True, help="Load even when grids are already loaded.")
@click.option(
    "--history/--no-history",
    default=False,
    help="Also write three months of case history (when there are no cases yet).",
)
def load_sample(force: bool, history: bool) -> None:
    """Load the sample street and village from data/sample_boundaries (one transaction)."""
    from app import migrate as mig
    from app.db import get_session, transaction
    from app.services import importer

    app = _app()
    mig.upgrade_app(app.config)
    with app.app_context():
        session = get_session()
        if importer.is_loaded(session) and not force:
            click.echo("grids are already loaded; nothing to do (--force to load anyway)")
        else:
            try:
                with transaction(session):
                    counts = importer.load_directory(session, progress=_progress())
            except (AppError, GisError) as exc:
                raise _fail(exc) from exc
            click.echo("loaded: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if history:
            _sample_history(session)


@main.command("import")
@click.argument(
    "kind",
    type=click.Choice(
        [
            "departments",
            "grids",
            "workers",
            "assignments",
            "households",
            "service_points",
            "cameras",
            "basemap",
            "network",
        ]
    ),
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--crs",
    default=None,
    help="CRS of the coordinates: wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Take FIELD from COLUMN (repeatable).",
)
@click.option(
    "--kind",
    "feature_kind",
    default=None,
    type=click.Choice(["road", "building", "water", "green", "rail"]),
    help="basemap only: every feature of the file is of this kind (else the file's kind column).",
)
@click.option("--department", default=None, help="network only: the department (code or name).")
@click.option("--name", "network_name", default=None, help="network only: the layer's name.")
@click.option(
    "--network-kind",
    default="other",
    type=click.Choice(["police", "urban", "environment", "market", "emergency", "health", "other"]),
    help="network only: what kind of departmental grid it is.",
)
@click.option("--street", default=None, help="network only: the code of the grid it belongs to.")
@click.option(
    "--map-value",
    "map_values",
    multiple=True,
    metavar="FIELD=FROM:TO,FROM:TO",
    help="Rewrite values of FIELD before the checks (repeatable), e.g. kind=toilets:other.",
)
@click.option(
    "--mapping-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help='A JSON or YAML file: {"columns": {field: column}, "values": {field: {from: to}}}.',
)
@click.option(
    "--outside",
    type=click.Choice(["refuse", "lowest", "hold"]),
    default="refuse",
    show_default=True,
    help="households/cameras: a point in no leaf grid is refused, kept in the lowest grid "
    "covering it, or held aside in the unassigned list.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything and print what would be created, placed, held and refused; write nothing.",
)
def import_cmd(
    kind: str,
    path: Path,
    crs: str | None,
    mapping: tuple[str, ...],
    feature_kind: str | None,
    department: str | None,
    network_name: str | None,
    network_kind: str,
    street: str | None,
    map_values: tuple[str, ...],
    mapping_file: Path | None,
    outside: str,
    dry_run: bool,
) -> None:
    """Import a GeoJSON, Shapefile, GeoPackage or CSV (lon/lat columns) file; all or nothing.

    KIND basemap loads the e-map's own basemap (roads, buildings, water, green areas, rails):
    columns kind, class, name, min_zoom (all optional with --kind). KIND network loads a
    department's own grid layer (多网合一; columns code, name, person, phone, worker_code; a CSV
    gives each grid as a wkt column) with --department and --name."""
    if feature_kind and kind != "basemap":
        raise click.UsageError("--kind applies to the basemap import only")
    if kind == "network":
        _import_network(path, crs, mapping, department, network_name, network_kind, street)
        return
    from app.db import get_session, transaction
    from app.services import importer, tables
    from app.services.importer import options as import_options
    from app.services.importer.statistics import analyze_imported

    try:
        columns, values = ({}, {})
        if mapping_file is not None:
            columns, values = import_options.read_mapping_file(
                mapping_file.read_bytes(), mapping_file.name
            )
        columns.update(tables.parse_mapping(list(mapping)))
        for name, table in import_options.parse_value_map(list(map_values)).items():
            values.setdefault(name, {}).update(table)
        opts = import_options.ImportOptions(values=values, outside=outside, dry_run=dry_run)
    except (AppError, GisError) as exc:
        raise _fail(exc) from exc
    app = _app()
    with app.app_context():
        session = get_session()
        started = time.perf_counter()
        bar = _ProgressBar()
        try:
            if dry_run:
                try:
                    report = import_options.run_import(
                        session,
                        kind,
                        path,
                        crs=crs,
                        mapping=columns,
                        options=opts,
                        progress=bar,
                        feature_kind=feature_kind,
                    )
                finally:
                    bar.close()
                    session.rollback()
            else:
                with transaction(session):
                    report = import_options.run_import(
                        session,
                        kind,
                        path,
                        crs=crs,
                        mapping=columns,
                        options=opts,
                        progress=bar,
                        feature_kind=feature_kind,
                    )
                    bar.close()
                    if kind != "households":  # households count themselves as they load
                        importer.refresh_household_counts(session)
                analyze_imported(session, kind, int(report["created"]))
        except (AppError, GisError) as exc:
            bar.close()
            raise _fail(exc) from exc
    _print_import_report(report)
    took = time.perf_counter() - started
    if dry_run:
        click.echo(f"dry run of {path.name} in {took:.1f} s: nothing was written")
        if report["refused"]:
            sys.exit(1)
        return
    click.echo(f"imported {report['created']} {kind} from {path.name} in {took:.1f} s")


class _ProgressBar:
    """A progress bar on standard error for each stage of a long import (read, located,
    copied …); short stages finish before it shows."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None
        self.at = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = click.progressbar(
                length=max(total, 1), label=f"  {stage}", file=sys.stderr, show_pos=True
            ).__enter__()
            self.at = 0
        if self.bar is not None and done > self.at:
            self.bar.update(done - self.at)
            self.at = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        self.stage = None


def _print_import_report(report: dict) -> None:  # type: ignore[type-arg]
    if report["unused_columns"]:
        click.echo(
            "warning: columns not used (no field takes them): "
            + ", ".join(report["unused_columns"]),
            err=True,
        )
    for name, hits in report["values_mapped"].items():
        click.echo(f"values of {name} mapped: " + ", ".join(f"{k} ({n})" for k, n in hits.items()))
    if report["buildings"]:
        click.echo(f"{report['buildings']} building rows became several households each")
    word = "would be " if report["dry_run"] else ""
    if not report["refused"]:
        click.echo(f"{word}created: {report['created']} {report['kind']}")
        for code, n in list(report["by_grid"].items())[:30]:
            click.echo(f"  in {code}: {n}")
    for p in report["placed"][:50]:
        click.echo(f"{word}placed in the covering grid {p['grid_code']}: {p['where']}")
    for h in report["held"][:50]:
        click.echo(f"{word}held aside: {h['where']} ({h['reason']})")
    if report["refused"]:
        click.echo(f"{word}refused: {len(report['refused'])} bad record(s), nothing would load")
        for p in report["refused"][:50]:
            click.echo(f"  {p.get('where', '')}: {p.get('reason', '')}")


def _import_network(
    path: Path,
    crs: str | None,
    mapping: tuple[str, ...],
    department: str | None,
    name: str | None,
    kind: str,
    street: str | None,
) -> None:
    if not department or not name:
        raise click.UsageError("a network import needs --department and --name")
    from sqlalchemy import text

    from app.db import get_session, transaction
    from app.services import networks, tables

    app = _app()
    with app.app_context():
        session = get_session()
        try:
            with transaction(session):
                street_id = None
                if street:
                    street_id = session.scalar(
                        text("SELECT id FROM grid WHERE code = :c AND valid_to IS NULL"),
                        {"c": street},
                    )
                    if street_id is None:
                        raise click.UsageError(f"--street: no current grid with code {street}")
                answer = networks.import_network(
                    session,
                    path,
                    department=department,
                    name=name,
                    kind=kind,
                    crs=crs,
                    mapping=tables.parse_mapping(list(mapping)),
                    street_id=street_id,
                )
        except (AppError, GisError) as exc:
            raise _fail(exc) from exc
    click.echo(
        f"imported {answer['imported']} grids of network {answer['name']} "
        f"({answer['department']['name']}, version {answer['version']}) from {path.name}"
    )


@main.group()
def basemap() -> None:
    """The e-map's own basemap."""


@basemap.command("build")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--min-zoom", default=8, show_default=True, type=click.IntRange(0, 22))
@click.option("--max-zoom", default=16, show_default=True, type=click.IntRange(0, 22))
def basemap_build(out: Path, min_zoom: int, max_zoom: int) -> None:
    """Write the own basemap (imported roads, buildings, water …) to a PMTiles file OUT, for
    GRIDGOV_BASEMAP_PMTILES (a file to copy to an intranet server, or to serve without the
    database doing the cutting)."""
    from app.db import get_session
    from app.services import basemap as svc

    app = _app()
    started = time.perf_counter()
    with app.app_context():
        try:
            counts = svc.build_pmtiles(get_session(), out, min_zoom=min_zoom, max_zoom=max_zoom)
        except svc.BasemapConfigError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"wrote {counts['tiles']} tiles ({counts['bytes'] / 1e6:.1f} MB of "
        f"{counts['addressed']} addressed, zooms {min_zoom}–{max_zoom}) to {out} "
        f"in {time.perf_counter() - started:.1f} s"
    )


@main.command("export")
@click.argument(
    "kind", type=click.Choice(["grids", "households", "service_points", "cameras", "workers"])
)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["geojson", "shapefile", "gpkg", "csv"]),
    default=None,
    help="Default: from the file name.",
)
@click.option("--crs", default=None, help="Write coordinates in this CRS (default WGS84).")
@click.option(
    "--include-personal",
    is_flag=True,
    help="Write names and phones unmasked (households, workers).",
)
def export_cmd(
    kind: str, path: Path, fmt: str | None, crs: str | None, include_personal: bool
) -> None:
    """Export current records to GeoJSON, Shapefile, GeoPackage or CSV."""
    from app.db import get_session
    from app.services import exporter

    app = _app()
    with app.app_context():
        try:
            n = exporter.export(
                get_session(), kind, path, fmt=fmt, crs=crs, include_personal=include_personal
            )
        except (AppError, GisError) as exc:
            raise _fail(exc) from exc
    click.echo(f"exported {n} {kind} to {path}")


@main.group()
def retention() -> None:
    """Keep personal field data no longer than the settings say (tracks, positions)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted, delete nothing.")
def retention_run(dry_run: bool) -> None:
    """Delete patrol points and tracks older than ``track_days`` and clear visit and check-in
    positions older than ``visit_position_days``; print the counts."""
    from app.db import get_session, transaction
    from app.services import retention as retention_svc

    app = _app()
    with app.app_context():
        session = get_session()
        with transaction(session):
            counts = retention_svc.retention_run(session, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb}: {counts['points']} track points and {counts['dropped_points']} dropped points"
        f" of {counts['patrols']} patrols begun before {counts['tracks_before']}"
        f" ({counts['track_days']} days); cleared {counts['visit_positions']} visit and"
        f" {counts['checkin_positions']} check-in positions before {counts['positions_before']}"
        f" ({counts['visit_position_days']} days)"
    )


@main.command("locate")
@click.argument("x", type=float)
@click.argument("y", type=float)
@click.option("--crs", default=None, help="wgs84 (default), cgcs2000, gcj02, bd09 or EPSG:<code>.")
@click.option("--category", default=None, help="Case category (applies its override areas).")
def locate_cmd(x: float, y: float, crs: str | None, category: str | None) -> None:
    """Locate one point (X=lon or easting, Y=lat or northing): micro-grid, owner, fallback."""
    from app.db import get_session
    from app.services import locate as svc

    app = _app()
    with app.app_context():
        try:
            result = svc.locate_point(get_session(), x, y, crs, category=category)
        except (AppError, GisError) as exc:
            raise _fail(exc) from exc
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))


@main.command("locate-batch")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV to write (default: standard output).",
)
@click.option("--crs", default=None, help="CRS of the points (default: the file's, else wgs84).")
@click.option("--category", default=None, help="Case category (applies its override areas).")
def locate_batch_cmd(
    path: Path, output: Path | None, crs: str | None, category: str | None
) -> None:
    """Locate every point of a CSV (lon/lat or x/y columns, optional id) or GeoJSON file.

    Writes one CSV row per point, in input order: method, micro-grid, owner. Points with bad
    coordinates are kept with method 'invalid' and the reason.
    """
    from app.db import get_session
    from app.services import locate as svc

    fmt = "csv" if path.suffix.lower() == ".csv" else "geojson"
    app = _app()
    with app.app_context():
        started = time.perf_counter()
        try:
            ids, x, y, named = svc.parse_points(path.read_bytes(), fmt)
            result = svc.locate_batch(get_session(), x, y, crs or named, category=category)
        except (AppError, GisError) as exc:
            raise _fail(exc) from exc
        took = time.perf_counter() - started
        if output is None:
            svc.write_csv(result, sys.stdout, ids)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                svc.write_csv(result, out, ids)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts().items() if v)
    click.echo(f"located {len(result)} points in {took:.2f} s: {counts}", err=True)


@main.group()
def calendar() -> None:
    """The working-day calendar that case deadlines count on (holidays, make-up working days)."""


@calendar.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def calendar_load(path: Path) -> None:
    """Load a calendar CSV (date,is_workday,name,source); it replaces the years it names."""
    from app.db import get_session, transaction
    from app.services import calendar as cal

    app = _app()
    with app.app_context():
        session = get_session()
        try:
            with transaction(session):
                years = cal.replace_years(session, cal.read_calendar_file(path))
        except (AppError, GisError) as exc:
            raise _fail(exc) from exc
    click.echo(f"calendar: loaded {path.name} for {', '.join(map(str, years))}")


@calendar.command("show")
@click.option("--year", type=int, default=None)
def calendar_show(year: int | None) -> None:
    """List the holidays and make-up working days."""
    from app.db import get_session
    from app.services import calendar as cal

    app = _app()
    with app.app_context():
        for row in cal.calendar_rows(get_session(), year):
            flag = "上班" if row["is_workday"] else "休"
            click.echo(f"{row['date']}  {flag}  {row['name']}")


@main.group()
def cases() -> None:
    """The case loop: scheduled work."""


@cases.command("sweep")
def cases_sweep() -> None:
    """Close verified cases whose rating window has passed (run it from cron, e.g. hourly)."""
    from app.db import get_session, transaction
    from app.services import cases as svc

    app = _app()
    with app.app_context():
        session = get_session()
        with transaction(session):
            closed = svc.close_unrated(session)
    click.echo(
        f"closed {len(closed)} unrated case(s)" + (": " + ", ".join(closed) if closed else "")
    )


@main.group()
def points() -> None:
    """Points ledgers (积分): scheduled work."""


@points.command("sync")
def points_sync() -> None:
    """Make the automatic points entries from cases and linked households (each once; run it
    from cron, e.g. nightly — running it again makes nothing twice)."""
    from app.db import get_session, transaction
    from app.services import points_auto

    app = _app()
    with app.app_context():
        session = get_session()
        with transaction(session):
            made = points_auto.sync(session)
    click.echo(" ".join(f"{kind}={n}" for kind, n in made.items()))


@main.group()
def users() -> None:
    """Manage accounts: the first administrator, staff accounts, API tokens."""


def _read_password(password_stdin: bool, username: str) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt(f"password for {username}", hide_input=True, confirmation_prompt=True)


def _create_user(username: str, role: str, password: str | None, **links: object) -> None:
    from app.db import get_session, transaction
    from app.services import users as svc

    app = _app()
    with app.app_context():
        session = get_session()
        try:
            with transaction(session):
                user = svc.create_user(session, username, role, password, **links)  # type: ignore[arg-type]
        except (AppError, GisError) as exc:
            raise _fail(exc) from exc
    click.echo(f"created {role} account '{username}' (id {user.id})")


@users.command("create-admin")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create_admin(username: str, password_stdin: bool) -> None:
    """Create an administrator (there is no default account or password)."""
    _create_user(username, "admin", _read_password(password_stdin, username))


@users.command("create")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(list(__import__("app.models.auth", fromlist=["USER_ROLES"]).USER_ROLES)),
)
@click.option("--name", "display_name", help="The person's name as shown in the corner.")
@click.option("--worker-code", help="The worker this account is (chiefs, workers, party members).")
@click.option("--department-code", help="The department of a department account.")
@click.option("--grid-code", help="The street of a command-centre account (none: every grid).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(
    username: str,
    role: str,
    display_name: str | None,
    worker_code: str | None,
    department_code: str | None,
    grid_code: str | None,
    password_stdin: bool,
) -> None:
    """Create an account with a role and what it is linked to."""
    password = None if role == "camera_feed" else _read_password(password_stdin, username)
    _create_user(
        username,
        role,
        password,
        display_name=display_name,
        worker_code=worker_code,
        department_code=department_code,
        grid_code=grid_code,
    )


@users.command("list")
def users_list() -> None:
    """List the accounts."""
    from app.db import get_session
    from app.services import users as svc

    app = _app()
    with app.app_context():
        for u in svc.list_users(get_session()):
            state = "active" if u["active"] else "disabled"
            click.echo(f"{u['id']:>5}  {u['username']:<24} {u['role']:<13} {state}")


@users.command("token")
@click.argument("username")
def users_token(username: str) -> None:
    """Issue an API token for an account (machine clients: camera analytics, batch jobs).

    The token is printed once; only its hash is kept. Send it as ``Authorization: Bearer …``.
    """
    from sqlalchemy import select

    from app.auth import limits
    from app.db import get_session, transaction
    from app.models import AppUser
    from app.services import users as svc

    app = _app()
    with app.app_context():
        session = get_session()
        user = session.scalar(select(AppUser).where(AppUser.username == username))
        if user is None:
            raise click.ClickException(f"no account '{username}'")
        with transaction(session):
            new = svc.start_session(session, user, None, limits(), kind="token")
    click.echo(new.token)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--workers", default=2, show_default=True, type=int, help="gunicorn worker processes."
)
@click.option(
    "--sample/--no-sample", default=False, help="Load the sample data when no grid is loaded."
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log every request to standard output (costs a good part of a fast request's time; "
    "leave it to a front proxy when one logs already).",
)
def serve(host: str, port: int, workers: int, sample: bool, access_log: bool) -> None:
    """Serve the e-map and the API with gunicorn (starting the private database when needed)."""
    from gunicorn.app.base import BaseApplication

    from app import migrate as mig
    from app.db import get_session, transaction
    from app.services import importer

    app = _app()
    mig.upgrade_app(app.config)
    with app.app_context():
        session = get_session()
        if sample and not importer.is_loaded(session):
            click.echo("loading the sample street and village …")
            with transaction(session):
                importer.load_directory(session, progress=_progress())
        if sample:
            _sample_history(session)
            from app.services import sample_accounts

            with transaction(session):
                made = sample_accounts.ensure(session, sample_accounts.DEFAULT_FILE)
            if made:
                click.echo(
                    f"sample accounts (one per role, random passwords) written to "
                    f"{sample_accounts.DEFAULT_FILE}:"
                )
                for line in made:
                    click.echo("  " + line)
            else:
                click.echo(f"sample accounts: see {sample_accounts.DEFAULT_FILE}")
        else:
            from sqlalchemy import func, select

            from app.models import AppUser

            if not session.scalar(select(func.count()).select_from(AppUser)):
                click.echo(
                    "no account yet: create the first administrator with "
                    "'gridgov users create-admin NAME'"
                )
    app.extensions["gridgov_db"].dispose()  # no connections shared across the fork

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", 4)
            self.cfg.set("accesslog", "-" if access_log else None)
            # As gunicorn.conf.py: a worker's garbage collections skip the app's start.
            self.cfg.set("post_worker_init", lambda worker: gc.freeze())
            # gunicorn's control socket defaults to one path per account (the home folder): two
            # checkouts served by the same account would share it. Each gets its own.
            ctl = Path(__file__).resolve().parents[1] / "var" / f"gunicorn-{port}.ctl"
            if len(str(ctl)) < 100:  # a Unix socket path is limited to about 108 bytes
                ctl.parent.mkdir(parents=True, exist_ok=True)
                self.cfg.set("control_socket", str(ctl))
            else:
                self.cfg.set("control_socket_disable", True)

        def load(self):  # type: ignore[no-untyped-def]
            return app

    click.echo(f"e-map: http://{host}:{port}/emap")
    Server().run()


if __name__ == "__main__":
    sys.exit(main())

"""The app serves requests as a role that can neither get round the append-only audit log nor
change the schema; the owner role runs the migrations; an older cluster, where the app connected
as the superuser, is brought to this in place on its next start."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.exc import DBAPIError

from app import migrate as mig
from app.embedded_pg import APP_ROLE, OWNER_ROLE, SUPERUSER, Cluster, default_cluster
from tests.conftest import own_database


def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool)


@pytest.fixture(scope="module")
def app_engine(database_url: str) -> Iterator[Engine]:
    engine = _engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def owner_engine(owner_database_url: str) -> Iterator[Engine]:
    engine = _engine(owner_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def roles(app_engine: Engine, owner_engine: Engine) -> tuple[str, str]:
    """(the app's role, the owner's role) of the test database; they must differ."""
    with app_engine.connect() as a, owner_engine.connect() as o:
        app_role = a.execute(text("SELECT current_user")).scalar_one()
        owner = o.execute(text("SELECT current_user")).scalar_one()
    if app_role == owner:
        pytest.skip(
            "GRIDGOV_TEST_DATABASE_URL without GRIDGOV_TEST_MIGRATION_DATABASE_URL: one role"
        )
    return app_role, owner


def _role_facts(conn, role: str) -> dict:  # type: ignore[no-untyped-def]
    row = conn.execute(
        text(
            "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication "
            "FROM pg_roles WHERE rolname = :r"
        ),
        {"r": role},
    ).one()
    return dict(row._mapping)


def test_the_app_role_is_no_superuser_and_owns_nothing(app_engine, roles) -> None:  # type: ignore[no-untyped-def]
    app_role, owner = roles
    with app_engine.connect() as conn:
        facts = _role_facts(conn, app_role)
        assert facts == dict.fromkeys(facts, False), facts
        owned = conn.execute(
            text("SELECT count(*) FROM pg_class WHERE relowner = CAST(:r AS regrole)"),
            {"r": app_role},
        ).scalar_one()
        assert owned == 0
        assert not conn.execute(
            text("SELECT pg_has_role(current_user, :o, 'MEMBER')"), {"o": owner}
        ).scalar_one()
        assert not conn.execute(
            text("SELECT has_schema_privilege('public', 'CREATE')")
        ).scalar_one()
        assert not conn.execute(
            text("SELECT has_database_privilege(current_database(), 'CREATE, TEMPORARY')")
        ).scalar_one()
        # On the audit log: read and append, nothing else.
        allowed = {
            p
            for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
            if conn.execute(
                text("SELECT has_table_privilege('audit_log', :p)"), {"p": p}
            ).scalar_one()
        }
        assert allowed == {"SELECT", "INSERT"}


def test_the_suite_serves_requests_as_the_app_role(app, roles) -> None:  # type: ignore[no-untyped-def]
    """Every other test's requests run through this engine: the suite passing is the proof
    that the app needs nothing more (imports with COPY, reports, grid edits, exports …)."""
    database = app.extensions["gridgov_db"]
    for engine in (
        database.engine,
        database.read_engine,
        database.dbapi_engine,
        database.fast_engine,
    ):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == roles[0]
            assert not conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar_one()


BYPASSES = [
    # Switch the audit log's triggers off, for the session or the table.
    "SET session_replication_role = replica",
    "SET LOCAL session_replication_role = replica",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
    "DROP TRIGGER audit_log_no_update ON audit_log",
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NEW; END $$",
    "ALTER TABLE audit_log OWNER TO CURRENT_USER",
    # Change or empty it.
    "UPDATE audit_log SET action = 'nothing happened'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    # DDL.
    "CREATE TABLE intruder (id int)",
    "CREATE TEMP TABLE intruder (id int)",
    "CREATE SCHEMA intruder",
    "CREATE VIEW intruder AS SELECT 1",
    "DROP TABLE grid",
    "ALTER TABLE grid ADD COLUMN intruder int",
    "CREATE INDEX intruder ON grid (name)",
    "TRUNCATE grid CASCADE",
    "DROP TABLE alembic_version",
    "UPDATE alembic_version SET version_num = 'x'",
    # PostGIS's reference table is read-only.
    "INSERT INTO spatial_ref_sys (srid, auth_name) VALUES (990001, 'intruder')",
    "UPDATE spatial_ref_sys SET proj4text = '' WHERE srid = 4326",
    "DELETE FROM spatial_ref_sys WHERE srid = 4326",
    # Role and server powers.
    "ALTER ROLE CURRENT_USER SUPERUSER",
    "ALTER ROLE CURRENT_USER BYPASSRLS",
    "ALTER ROLE CURRENT_USER CREATEROLE",
    "CREATE ROLE intruder SUPERUSER LOGIN",
    "CREATE DATABASE intruder",
    "COPY grid (name) FROM '/etc/passwd'",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "SELECT pg_read_file('/etc/passwd')",
    "ALTER SYSTEM SET log_statement = 'none'",
]
# These cannot run inside a transaction block.
OUTSIDE_TRANSACTIONS = {"CREATE DATABASE intruder", "ALTER SYSTEM SET log_statement = 'none'"}


@pytest.mark.parametrize("statement", BYPASSES)
def test_the_app_role_is_refused_every_bypass(app_engine, roles, statement: str) -> None:  # type: ignore[no-untyped-def]
    with app_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        conn.rollback()
        if statement in OUTSIDE_TRANSACTIONS:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(DBAPIError) as refused:
            conn.exec_driver_sql(statement)
        # 42501: insufficient privilege ("permission denied", "must be owner", "must be
        # superuser") — not a trigger's or a constraint's error that a superuser could lift.
        assert refused.value.orig.sqlstate == "42501", (statement, str(refused.value.orig))
        conn.rollback()
        assert conn.execute(text("SHOW session_replication_role")).scalar_one() == "origin"
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= before


def test_set_role_to_the_owner_is_refused(app_engine, roles) -> None:  # type: ignore[no-untyped-def]
    with app_engine.connect() as conn, pytest.raises(DBAPIError) as refused:
        conn.exec_driver_sql(f'SET ROLE "{roles[1]}"')
    assert refused.value.orig.sqlstate == "42501"


def test_the_app_role_appends_to_the_audit_log_and_uses_sequences(app_engine, roles) -> None:  # type: ignore[no-untyped-def]
    """What the app does at run time: append audit rows, draw case codes, take advisory locks."""
    with app_engine.connect() as conn:
        trans = conn.begin()
        conn.execute(
            text(
                "INSERT INTO audit_log (kind, action, username, role) "
                "VALUES ('change', 'roles-test', 'nobody', 'admin')"
            )
        )
        assert conn.execute(text("SELECT nextval('case_code_seq')")).scalar_one() > 0
        conn.execute(text("SELECT pg_advisory_xact_lock(7301, 1)"))
        assert (
            conn.execute(
                text("SELECT count(*) FROM spatial_ref_sys WHERE srid = 4326")
            ).scalar_one()
            == 1
        )
        trans.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing happened'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
def test_the_owner_is_still_held_by_the_append_only_triggers(
    owner_engine, roles, statement: str
) -> None:  # type: ignore[no-untyped-def]
    with owner_engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.exec_driver_sql(statement)


def test_a_later_migrations_table_is_granted_to_the_app_role(
    app_engine, owner_engine, roles
) -> None:  # type: ignore[no-untyped-def]
    """A table the owner creates later (a new migration) is the app's to use, not to alter —
    even before the grant step that follows every upgrade."""
    with owner_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE later_feature (id serial PRIMARY KEY, note text)")
    try:
        with app_engine.connect() as conn:
            trans = conn.begin()
            conn.exec_driver_sql("INSERT INTO later_feature (note) VALUES ('a')")
            conn.exec_driver_sql("UPDATE later_feature SET note = 'b'")
            assert conn.execute(text("SELECT note FROM later_feature")).scalar_one() == "b"
            conn.exec_driver_sql("DELETE FROM later_feature")
            trans.rollback()
            for sql in ("TRUNCATE later_feature", "DROP TABLE later_feature"):
                with pytest.raises(DBAPIError) as refused:
                    conn.exec_driver_sql(sql)
                assert refused.value.orig.sqlstate == "42501"
                conn.rollback()
    finally:
        with owner_engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE later_feature")


@pytest.fixture()
def old_cluster() -> Iterator[Cluster]:
    """A cluster of its own, made the way older versions made it: the database, its schema
    and everything in it owned by the bootstrap superuser, which the app connected as."""
    if os.environ.get("GRIDGOV_TEST_DATABASE_URL"):
        pytest.skip("the embedded cluster is not in use")
    # Next to the checkout's own cluster, where the account that runs PostgreSQL can reach.
    own = default_cluster().root
    root = own.with_name(f"{own.name}-upgrade-test-{os.getpid()}")
    shutil.rmtree(root, ignore_errors=True)
    cluster = Cluster(root)
    try:
        cluster.init()
        cluster.start_server()
        cluster.psql("postgres", "CREATE DATABASE gridgov")
        cluster.psql("gridgov", "CREATE EXTENSION postgis")
        superuser_url = cluster.url("gridgov", SUPERUSER)
        mig.upgrade(superuser_url)
        engine = _engine(superuser_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (kind, action, username, role) "
                    "VALUES ('change', 'before the upgrade', 'old', 'admin')"
                )
            )
            assert (
                conn.execute(
                    text("SELECT count(*) FROM pg_roles WHERE rolname IN (:a, :o)"),
                    {"a": APP_ROLE, "o": OWNER_ROLE},
                ).scalar_one()
                == 0
            )
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_an_older_cluster_is_upgraded_in_place_on_start(old_cluster: Cluster) -> None:
    for _ in range(2):  # the second start finds everything done and changes nothing
        old_cluster.start()
        mig.upgrade(old_cluster.owner_url(), app_url=old_cluster.url())
    app_engine = _engine(old_cluster.url())
    try:
        with app_engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == APP_ROLE
            for role in (APP_ROLE, OWNER_ROLE):
                facts = _role_facts(conn, role)
                assert facts == dict.fromkeys(facts, False), (role, facts)
            owners = dict(
                conn.execute(
                    text(
                        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
                        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S')"
                    )
                ).all()
            )
            assert owners.pop("spatial_ref_sys") == SUPERUSER  # PostGIS's, stays with it
            assert set(owners.values()) == {OWNER_ROLE}, owners
            assert (
                conn.execute(
                    text(
                        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'gridgov'"
                    )
                ).scalar_one()
                == OWNER_ROLE
            )
            assert (
                conn.execute(text("SELECT action FROM audit_log ORDER BY id LIMIT 1")).scalar_one()
                == "before the upgrade"
            )
            conn.rollback()
            trans = conn.begin()
            conn.execute(text("INSERT INTO department (code, name) VALUES ('X-UP', '升级后')"))
            conn.execute(
                text(
                    "INSERT INTO audit_log (kind, action, username, role) "
                    "VALUES ('change', 'after the upgrade', 'new', 'admin')"
                )
            )
            trans.commit()
            for statement in (
                "SET session_replication_role = replica",
                "DELETE FROM audit_log",
                "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            ):
                with pytest.raises(DBAPIError) as refused:
                    conn.exec_driver_sql(statement)
                assert refused.value.orig.sqlstate == "42501"
                conn.rollback()
    finally:
        app_engine.dispose()


@pytest.fixture()
def scratch(cluster):  # type: ignore[no-untyped-def]
    """A fresh, empty database on the embedded cluster: (the app's URL, the owner's URL)."""
    if os.environ.get("GRIDGOV_TEST_DATABASE_URL"):
        pytest.skip("the embedded cluster is not in use")
    name = own_database("gridgov_test_roles")
    yield cluster.recreate_database(name), cluster.owner_url(name)
    cluster.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_runs_as_the_migration_url_and_grants_the_app_role(scratch) -> None:  # type: ignore[no-untyped-def]
    """`gridgov migrate` with an external server's two settings: the schema is created by the
    owner, the app's role gets its privileges; the app's role alone could not have migrated."""
    from click.testing import CliRunner

    from app.cli import main

    app_url, owner_url = scratch
    alone = CliRunner(env={"GRIDGOV_DATABASE_URL": app_url}).invoke(main, ["migrate"])
    assert alone.exit_code != 0 and "permission denied" in str(alone.exception)
    env = {"GRIDGOV_DATABASE_URL": app_url, "GRIDGOV_MIGRATION_DATABASE_URL": owner_url}
    done = CliRunner(env=env).invoke(main, ["migrate"])
    assert done.exit_code == 0, done.output
    engine = _engine(app_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'grid'")
                ).scalar_one()
                == OWNER_ROLE
            )
            conn.execute(text("INSERT INTO department (code, name) VALUES ('X-CLI', 'x')"))
            with pytest.raises(DBAPIError) as refused:
                conn.execute(text("DELETE FROM audit_log"))
            assert refused.value.orig.sqlstate == "42501"
    finally:
        engine.dispose()

"""The two database roles: an owner that runs the migrations and owns the schema, and the app's
role that serves requests with only the privileges it needs.

The app's role is not a superuser, cannot bypass row security, create databases or roles, owns
nothing and may not create anything in the schema (no DDL). On the app's tables it may SELECT,
INSERT, UPDATE and DELETE (never TRUNCATE, TRIGGER or REFERENCES); on ``audit_log`` only SELECT
and INSERT, so the append-only log cannot be changed or emptied, and its triggers cannot be
switched off (that needs the table's owner, or a superuser for ``session_replication_role``);
``alembic_version`` and PostGIS's ``spatial_ref_sys`` it may only read. Sequences: USAGE and
SELECT (nextval, currval), not setval.

``grant_statements`` is run by the owner after every upgrade (``app.migrate.upgrade``) and
also sets the owner's default privileges, so a table that a later migration creates is granted
even when that migration is run by some other means.
"""

from __future__ import annotations

import re

#: Tables the app may only read and append to.
APPEND_ONLY = ("audit_log",)
#: Tables the app may only read.
READ_ONLY = ("alembic_version",)
#: What the app may do with every other table of the schema.
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"

_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def ident(name: str) -> str:
    """Quote a role or object name for SQL."""
    if _PLAIN.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string constant for SQL (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(literal(v) for v in values) + "]::text[]"


def grant_statements(owner: str, app: str) -> list[str]:
    """Return the SQL that gives ``app`` its privileges on the objects ``owner`` owns in the
    schema ``public`` (idempotent: every run first revokes what the app may have had)."""
    o, a = ident(owner), ident(app)
    return [
        # Nobody but the owner creates objects in the schema (PostgreSQL 15's default; older
        # servers and clusters upgraded from them granted it to everyone).
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"REVOKE ALL ON SCHEMA public FROM {a}",
        f"GRANT USAGE ON SCHEMA public TO {a}",
        f"""
DO $grants$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relname, c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND pg_get_userbyid(c.relowner) = {literal(owner)}
          AND NOT EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    LOOP
        IF r.relkind = 'S' THEN
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %I', r.rel, {literal(app)});
            EXECUTE format('GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCE %s TO %I', r.rel,
                           {literal(app)});
        ELSE
            EXECUTE format('REVOKE ALL ON TABLE %s FROM %I', r.rel, {literal(app)});
            IF r.relname = ANY({_array(APPEND_ONLY)}) THEN
                EXECUTE format('GRANT SELECT, INSERT ON TABLE %s TO %I', r.rel, {literal(app)});
            ELSIF r.relname = ANY({_array(READ_ONLY)}) THEN
                EXECUTE format('GRANT SELECT ON TABLE %s TO %I', r.rel, {literal(app)});
            ELSE
                EXECUTE format('GRANT {TABLE_PRIVILEGES} ON TABLE %s TO %I', r.rel,
                               {literal(app)});
            END IF;
        END IF;
    END LOOP;
END
$grants$
""",
        # Tables and sequences a later migration creates are the app's too.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
        f"GRANT {TABLE_PRIVILEGES} ON TABLES TO {a}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
        f"GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES TO {a}",
    ]


def own_statements(owner: str) -> list[str]:
    """Return the SQL (run by a superuser) that hands the database and every object of the
    schema ``public`` that is not part of an extension (PostGIS's stay with it) to ``owner``.

    A cluster made by an older version has them owned by its bootstrap superuser, whose
    objects ``REASSIGN OWNED`` refuses to move; so each is altered by name.
    """
    lit = literal(owner)
    not_extension = """NOT EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = '{catalog}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"""
    return [
        f"""
DO $own$
DECLARE
    r record;
BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO %I', current_database(), {lit});
    -- Tables, views and the sequences no table owns (a table's own follow it).
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public'
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND pg_get_userbyid(c.relowner) <> {lit}
          AND {not_extension.format(catalog="pg_class", oid="c.oid")}
          AND NOT (c.relkind = 'S' AND EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I',
                       CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                      WHEN 'm' THEN 'MATERIALIZED VIEW'
                                      WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                       r.rel, {lit});
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS fn, p.prokind
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> {lit}
          AND {not_extension.format(catalog="pg_proc", oid="p.oid")}
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I',
                       CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                                      ELSE 'FUNCTION' END,
                       r.fn, {lit});
    END LOOP;
    -- Enums, domains and ranges (a table's row type and array types follow their owner).
    FOR r IN
        SELECT t.oid::regtype AS ty, t.typtype
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r') AND t.typrelid = 0
          AND pg_get_userbyid(t.typowner) <> {lit}
          AND {not_extension.format(catalog="pg_type", oid="t.oid")}
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I',
                       CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.ty, {lit});
    END LOOP;
END
$own$
""",
    ]


def hardening_statements(owner: str, app: str) -> list[str]:
    """Return the SQL (run by the database's owner or a superuser) that closes the database to
    everyone but the two roles and refuses the app's role temporary tables (it needs none)."""
    return [
        f"""
DO $db$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), {literal(app)});
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), {literal(app)});
    EXECUTE format('GRANT ALL ON DATABASE %I TO %I', current_database(), {literal(owner)});
END
$db$
""",
        # PostGIS's reference table: read-only for everyone (its extension grants SELECT).
        f"""
DO $srs$
BEGIN
    IF to_regclass('public.spatial_ref_sys') IS NOT NULL THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
            ON public.spatial_ref_sys FROM PUBLIC;
        EXECUTE format('REVOKE ALL ON public.spatial_ref_sys FROM %I', {literal(app)});
        EXECUTE format('GRANT SELECT ON public.spatial_ref_sys TO %I', {literal(app)});
    END IF;
END
$srs$
""",
    ]


def role_statements(owner: str, app: str) -> list[str]:
    """Return the SQL (run by a superuser) that creates both roles unless they exist and gives
    them exactly these attributes (an older cluster's roles are corrected)."""
    attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
    out = []
    for name in (owner, app):
        out.append(
            f"""
DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {literal(name)}) THEN
        EXECUTE format('CREATE ROLE %I', {literal(name)});
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- created meanwhile by another start
END
$role$
"""
        )
        out.append(f"ALTER ROLE {ident(name)} {attrs}")
    # The app's role is nobody's member (SET ROLE to the owner would undo all of this).
    out.append(
        f"""
DO $members$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT m.roleid::regrole AS granted FROM pg_auth_members m
        WHERE m.member = {literal(app)}::regrole
    LOOP
        EXECUTE format('REVOKE %s FROM %I', r.granted, {literal(app)});
    END LOOP;
END
$members$
"""
    )
    return out

-- The application connects as casemgr_app: it owns nothing, cannot bypass row-level
-- security, and sees personal data only through the scope it sets in each transaction.
-- Migrations run as the owner (the role of DATABASE_URL).
CREATE EXTENSION IF NOT EXISTS ltree;

DO $$
BEGIN
    CREATE ROLE casemgr_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION
    -- Roles are cluster-wide: another database of the cluster may have created it, possibly
    -- at the same moment (then the catalog's unique index answers instead).
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO casemgr_app;

-- The caller's scope, set with set_config(..., true) at the start of every transaction.
-- An unset or empty setting yields NULL, and every policy compares against it, so a
-- transaction that forgot to set its scope sees nothing: deny by default.
CREATE FUNCTION app_account_id() RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.account_id', true), '')::bigint $$;

CREATE FUNCTION app_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.role', true), '') $$;

CREATE FUNCTION app_scope() RETURNS ltree
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.scope', true), '')::ltree $$;

-- The audit trail: append-only for the application, hash-chained, ids without gaps.
--
-- Each row's hash is sha256(prev_hash || canonical(row)). The chain head lives in
-- audit_head; the insert trigger locks that single row, so concurrent auditing
-- transactions take ids and links in commit order, and a REPEATABLE READ transaction that
-- would fork the chain fails instead. casemgr.audit.verify recomputes the chain in Python.
CREATE TABLE audit_log (
    id                  bigint PRIMARY KEY,
    at                  timestamptz NOT NULL,
    actor_id            bigint,
    actor_role          text,
    actor_org_unit_id   bigint,
    action              text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]{0,63}$'),
    object_type         text CHECK (object_type ~ '^[a-z][a-z0-9_]{0,63}$'),
    object_id           text CHECK (length(object_id) <= 64),
    purpose             text CHECK (length(purpose) <= 500),
    outcome             text NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    -- A reason code, never free text: free text is where personal data would leak in.
    reason              text CHECK (reason ~ '^[a-z][a-z0-9_]{0,63}$'),
    request_id          text CHECK (length(request_id) <= 64),
    prev_hash           bytea NOT NULL,
    hash                bytea NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE audit_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id     bigint NOT NULL,
    last_hash   bytea NOT NULL
);
INSERT INTO audit_head (last_id, last_hash) VALUES (0, '\x'::bytea || decode(repeat('00', 32), 'hex'));

-- One field of the canonical form: its UTF-8 length, a colon and the text; NULL is "~".
-- Length prefixes make the concatenation unambiguous whatever the fields contain.
CREATE FUNCTION audit_field(v text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END $$;

CREATE FUNCTION audit_canonical(r audit_log) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT audit_field(r.id::text)
            || audit_field(to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
            || audit_field(r.actor_id::text)
            || audit_field(r.actor_role)
            || audit_field(r.actor_org_unit_id::text)
            || audit_field(r.action)
            || audit_field(r.object_type)
            || audit_field(r.object_id)
            || audit_field(r.purpose)
            || audit_field(r.outcome)
            || audit_field(r.reason)
            || audit_field(r.request_id)
    $$;

CREATE FUNCTION audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    DECLARE
        v_last_id bigint;
        v_last_hash bytea;
    BEGIN
        SELECT last_id, last_hash INTO v_last_id, v_last_hash FROM audit_head FOR UPDATE;
        NEW.id := v_last_id + 1;
        NEW.at := clock_timestamp();
        NEW.prev_hash := v_last_hash;
        NEW.hash := sha256(v_last_hash || convert_to(audit_canonical(NEW), 'UTF8'));
        UPDATE audit_head SET last_id = NEW.id, last_hash = NEW.hash;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER audit_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_chain();

-- Nobody rewrites history through the application: it may insert, and an auditor may read
-- inside their scope; rows without an org unit (failed logins of unknown names) are read
-- only by an auditor at the top of the tree.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_insert ON audit_log FOR INSERT WITH CHECK (true);
CREATE POLICY audit_auditor_read ON audit_log FOR SELECT
    USING (
        app_role() = 'auditor'
        AND (
            actor_org_unit_id IN (SELECT app_scope_unit_ids())
            OR (actor_org_unit_id IS NULL AND nlevel(app_scope()) = 1)
        )
    );
-- The owner (who runs migrations and `casemgr audit verify`) reads the whole chain.
DO $$
BEGIN
    EXECUTE format(
        'CREATE POLICY audit_owner_verify ON audit_log FOR SELECT TO %I USING (true)',
        current_user);
END
$$;
GRANT INSERT, SELECT ON audit_log TO casemgr_app;

-- Every new or changed alert gets the next change number, in commit order (taken under one
-- row lock, as the audit chain's head is), so that a live client that resumes after change N
-- misses nothing committed after N and receives nothing twice. A notification wakes the
-- listeners; it carries the number only.

CREATE TABLE alert_change_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id    bigint NOT NULL
);
INSERT INTO alert_change_head VALUES (true, 0);
GRANT SELECT ON alert_change_head TO casemgr_app;

CREATE TABLE alert_changes (
    id          bigint PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id),
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX alert_changes_by_alert ON alert_changes (alert_id);
ALTER TABLE alert_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY alert_changes_read ON alert_changes FOR SELECT
    USING (EXISTS (SELECT 1 FROM alerts a WHERE a.id = alert_changes.alert_id));
GRANT SELECT ON alert_changes TO casemgr_app;
SELECT grant_owner_row_access('alert_changes');

CREATE FUNCTION alerts_record_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
    DECLARE
        change_id bigint;
    BEGIN
        UPDATE alert_change_head SET last_id = last_id + 1 RETURNING last_id INTO change_id;
        INSERT INTO alert_changes (id, alert_id) VALUES (change_id, NEW.id);
        PERFORM pg_notify('alert_changes', change_id::text);
        RETURN NULL;
    END $$;
CREATE TRIGGER alerts_record_change AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_record_change();

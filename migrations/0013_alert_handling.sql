-- Alert handling: acknowledgement, resolution with an outcome, and escalation.

CREATE TYPE alert_outcome AS ENUM ('confirmed_violation', 'device_fault', 'false_alarm', 'authorised_absence');

ALTER TABLE alerts
    ADD COLUMN acknowledged_by       bigint REFERENCES accounts (id),
    ADD COLUMN acknowledged_at       timestamptz,
    ADD COLUMN resolved_by           bigint REFERENCES accounts (id),
    ADD COLUMN resolved_at           timestamptz,
    ADD COLUMN outcome               alert_outcome,
    ADD COLUMN resolution_note       text CHECK (length(resolution_note) BETWEEN 1 AND 2000),
    -- 0: with the alert's own unit; 1: the office's supervisors; 2 and more: one level up each time.
    ADD COLUMN escalation_level      smallint NOT NULL DEFAULT 0,
    ADD COLUMN escalated_at          timestamptz,
    ADD COLUMN escalated_to_unit_id  bigint REFERENCES org_units (id),
    ADD CONSTRAINT alerts_acknowledged_by_someone
        CHECK (status = 'new' OR (acknowledged_by IS NOT NULL AND acknowledged_at IS NOT NULL)),
    ADD CONSTRAINT alerts_resolved_with_outcome_and_note
        CHECK (status <> 'resolved'
               OR (resolved_by IS NOT NULL AND resolved_at IS NOT NULL AND outcome IS NOT NULL
                   AND resolution_note IS NOT NULL));
CREATE INDEX alerts_waiting ON alerts (raised_at) WHERE status = 'new';

-- How long an alert may wait for acknowledgement before it goes up a level, by severity.
-- A severity without a row never escalates.
CREATE TABLE alert_escalation_limits (
    severity  alert_severity PRIMARY KEY,
    minutes   int NOT NULL CHECK (minutes BETWEEN 1 AND 10080)
);
INSERT INTO alert_escalation_limits VALUES ('critical', 5), ('serious', 30), ('warning', 240);
GRANT SELECT ON alert_escalation_limits TO casemgr_app;

-- The object check of an alert, whatever the caller's row policies let them see: its unit's
-- path and its case.
CREATE FUNCTION alert_locator(p_alert_id bigint) RETURNS TABLE (org_path ltree, case_id bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT o.path, a.case_id FROM alerts a JOIN org_units o ON o.id = a.org_unit_id WHERE a.id = p_alert_id $$;
REVOKE ALL ON FUNCTION alert_locator(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alert_locator(bigint) TO casemgr_app;

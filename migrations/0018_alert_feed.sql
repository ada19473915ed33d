-- The live feed of one process reads each change once, with what the process needs to decide
-- who may see it (the unit's path, the case's program and police sharing), and hands it to
-- each connected client whose scope and role admit it, the same rules as the row policies.
CREATE FUNCTION alert_changes_after(p_after bigint, p_limit int)
    RETURNS TABLE (
        change_id bigint, id bigint, kind text, severity text, status text, org_unit_id bigint,
        case_id bigint, handover_id bigint, task_id bigint, order_id bigint, raised_at timestamptz,
        details text, cleared_at timestamptz, acknowledged_by bigint, acknowledged_at timestamptz,
        resolved_by bigint, resolved_at timestamptz, outcome text, resolution_note text,
        escalation_level smallint, escalated_at timestamptz, escalated_to_unit_id bigint,
        covered_by_absence_id bigint, org_path text, program text, shared_with_police boolean
    )
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT ch.id, a.id, a.kind, a.severity::text, a.status::text, a.org_unit_id, a.case_id, a.handover_id,
               a.task_id, a.order_id, a.raised_at, a.details::text, a.cleared_at, a.acknowledged_by,
               a.acknowledged_at, a.resolved_by, a.resolved_at, a.outcome::text, a.resolution_note,
               a.escalation_level, a.escalated_at, a.escalated_to_unit_id, a.covered_by_absence_id,
               o.path::text, coalesce(c.program::text, a.details ->> 'program'), coalesce(c.shared_with_police, false)
          FROM alert_changes ch
          JOIN alerts a ON a.id = ch.alert_id
          JOIN org_units o ON o.id = a.org_unit_id
          LEFT JOIN cases c ON c.id = a.case_id
         WHERE ch.id > p_after
         ORDER BY ch.id
         LIMIT p_limit
    $$;
REVOKE ALL ON FUNCTION alert_changes_after(bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alert_changes_after(bigint, int) TO casemgr_app;

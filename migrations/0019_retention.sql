-- Retention: ping history is purged a set time after its order ends, and the people of closed
-- cases are anonymised a set time after their last case closed (casemgr.retention). It runs
-- as the owner (`casemgr retention run`, from a daily timer); every table it changes gets the
-- owner's row access where it lacked it, so that an owner without BYPASSRLS can do the job.
ALTER TABLE persons ADD COLUMN anonymised_at timestamptz;
ALTER TABLE monitoring_orders ADD COLUMN pings_purged_at timestamptz;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['persons', 'person_addresses', 'cases', 'case_events', 'case_contacts',
                             'monitoring_orders'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE tablename = t AND policyname = 'owner_row_access') THEN
            PERFORM grant_owner_row_access(t::regclass);
        END IF;
    END LOOP;
END
$$;

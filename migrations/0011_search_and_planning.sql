-- Performance under row-level security.

-- JIT compiles "expensive" plans for tens of milliseconds; the service runs short queries
-- whose estimated cost the policies inflate. It pays that price and gains nothing.
ALTER ROLE casemgr_app SET jit = off;

-- Search under row-level security: policies are applied before any predicate that is not
-- leakproof, and LIKE is not, so the name and pinyin indexes could not be used and every row
-- would pay its policy check. The matching runs here instead, as the owner, inside the
-- caller's own scope and role rules (read from the transaction's settings, as the policies
-- read them), and returns ids only; the application then reads those rows under the policies.
CREATE FUNCTION person_search_ids(
    p_exact text, p_contains text, p_prefix text, p_starts text, p_after bigint, p_limit int
) RETURNS SETOF bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        WITH units AS MATERIALIZED (SELECT id FROM org_units WHERE path <@ app_scope()),
             matches AS MATERIALIZED (
                 SELECT id FROM persons WHERE id_number = p_exact
                 UNION SELECT id FROM persons WHERE full_name LIKE p_starts || '%'
                 UNION SELECT id FROM persons WHERE p_contains <> '' AND full_name LIKE '%' || p_contains || '%'
                 UNION SELECT id FROM persons WHERE p_prefix <> '' AND name_pinyin LIKE p_prefix || '%'
                 UNION SELECT id FROM persons WHERE p_prefix <> '' AND name_initials LIKE p_prefix || '%'
                 UNION SELECT id FROM persons WHERE aliases @> ARRAY[p_exact])
        SELECT p.id
          FROM matches m JOIN persons p ON p.id = m.id
         WHERE (p_after IS NULL OR p.id > p_after)
           AND (
                 (app_role() IN ('officer', 'supervisor') AND p.org_unit_id IN (SELECT id FROM units))
                 OR EXISTS (
                     SELECT 1 FROM cases c
                      WHERE c.person_id = p.id AND c.org_unit_id IN (SELECT id FROM units)
                        AND app_may_read_case(c.program, c.shared_with_police))
               )
         ORDER BY p.id
         LIMIT p_limit
    $$;
REVOKE ALL ON FUNCTION person_search_ids(text, text, text, text, bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_search_ids(text, text, text, text, bigint, int) TO casemgr_app;

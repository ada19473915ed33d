-- Performance under row-level security.

-- JIT compiles "expensive" plans for tens of milliseconds; the service runs short queries
-- whose estimated cost the policies inflate. It pays that price and gains nothing.
ALTER ROLE casemgr_app SET jit = off;

CREATE INDEX persons_unit_pinyin ON persons (org_unit_id, name_pinyin text_pattern_ops);
CREATE INDEX persons_unit_initials ON persons (org_unit_id, name_initials text_pattern_ops);

-- Search under row-level security: policies are applied before any predicate that is not
-- leakproof, and LIKE is not, so the name and pinyin indexes could not be used and every row
-- would pay its policy check. The matching runs here instead, as the owner, inside the
-- caller's own scope and role rules (read from the transaction's settings, as the policies
-- read them), and returns ids only; the application then reads those rows under the policies.
-- Each branch is planned with the caller's actual text (EXECUTE ... USING, never spliced in),
-- so a prefix uses its index; an SQL function's generic plan could not.
CREATE FUNCTION person_search_ids(
    p_exact text, p_contains text, p_prefix text, p_starts text, p_after bigint, p_limit int
) RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $fn$
    DECLARE
        v_units bigint[];
    BEGIN
        SELECT coalesce(array_agg(id), '{}') INTO v_units FROM org_units WHERE path <@ app_scope();
        -- The matches first (each by its own index), then the scope checks on them alone,
        -- then the page: materialised in that order, whatever the planner would prefer.
        RETURN QUERY EXECUTE $q$
            WITH matches AS MATERIALIZED (
                     SELECT id FROM persons WHERE id_number = $1
                     UNION SELECT id FROM persons WHERE full_name LIKE $4 || '%'
                     UNION SELECT id FROM persons WHERE $2 <> '' AND full_name LIKE '%' || $2 || '%'
                     -- A short pinyin prefix ("wang") matches a good part of a city: inside the
                     -- caller's own units first; across the city only once it is specific.
                     UNION SELECT id FROM persons
                            WHERE $3 <> '' AND org_unit_id = ANY ($7) AND name_pinyin LIKE $3 || '%'
                     UNION SELECT id FROM persons WHERE length($3) >= 6 AND name_pinyin LIKE $3 || '%'
                     UNION SELECT id FROM persons
                            WHERE $3 <> '' AND org_unit_id = ANY ($7) AND name_initials LIKE $3 || '%'
                     UNION SELECT id FROM persons WHERE length($3) >= 3 AND name_initials = $3
                     UNION SELECT id FROM persons WHERE aliases @> ARRAY[$1]),
                 visible AS MATERIALIZED (
                     SELECT p.id
                       FROM matches m JOIN persons p ON p.id = m.id
                      WHERE ($5::bigint IS NULL OR p.id > $5)
                        AND ((app_role() IN ('officer', 'supervisor') AND p.org_unit_id = ANY ($7))
                             OR EXISTS (
                                 SELECT 1 FROM cases c
                                  WHERE c.person_id = p.id AND c.org_unit_id = ANY ($7)
                                    AND app_may_read_case(c.program, c.shared_with_police))))
            SELECT id FROM visible ORDER BY id LIMIT $6
        $q$ USING p_exact, p_contains, p_prefix, p_starts, p_after, p_limit, v_units;
    END
    $fn$;
REVOKE ALL ON FUNCTION person_search_ids(text, text, text, text, bigint, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION person_search_ids(text, text, text, text, bigint, int) TO casemgr_app;

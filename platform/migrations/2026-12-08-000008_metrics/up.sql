-- Counts for the platform's metrics: protocol subscriptions of active tenants, by plan (no
-- tenant is named; the application role reads nothing else across tenants).
CREATE FUNCTION platform.subscriptions_by_plan()
RETURNS TABLE (plan TEXT, n BIGINT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = platform, pg_temp AS $$
    SELECT t.plan, count(s.protocol) FROM platform.tenants t
    LEFT JOIN platform.subscriptions s USING (tenant_id)
    WHERE t.status = 'active'
    GROUP BY t.plan
$$;
REVOKE ALL ON FUNCTION platform.subscriptions_by_plan() FROM PUBLIC;

-- Tenants' call limits, as announced by TenantEntitlementsSet. A tenant without a row dials
-- without limits.
CREATE TABLE IF NOT EXISTS dialer_tenants (
    tenant_id             text PRIMARY KEY,
    bot_enabled           boolean NOT NULL,
    bot_expire_at         timestamptz,
    max_concurrent_calls  int NOT NULL,
    daily_calls           int NOT NULL,
    time_zone             text NOT NULL,
    -- last tenant stream_version applied
    version               bigint NOT NULL
);

-- Per tenant: calls out now, and calls placed on `day` (the tenant's local date). Kept by the
-- transactions that dial and release, like the per-line counts (never counted).
CREATE TABLE IF NOT EXISTS dialer_tenant_usage (
    tenant_id  text PRIMARY KEY,
    in_flight  int NOT NULL DEFAULT 0,
    day        date,
    day_calls  int NOT NULL DEFAULT 0
);
INSERT INTO dialer_tenant_usage (tenant_id, in_flight)
    SELECT t.tenant_id, count(*) FROM dialer_contacts c JOIN dialer_tasks t USING (task_id)
    WHERE c.state = 1 GROUP BY t.tenant_id
ON CONFLICT (tenant_id) DO NOTHING;

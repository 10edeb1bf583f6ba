-- Tenants' entitlements (seed 001's 猎企添加BOT权限 plus call limits), as set through
-- TenantService. A tenant without a row may do everything.
CREATE TABLE IF NOT EXISTS task_tenants (
    tenant_id             text PRIMARY KEY,
    bot_enabled           boolean NOT NULL,
    bot_expire_at         timestamptz,
    max_tasks             int NOT NULL,
    max_concurrent_calls  int NOT NULL,
    daily_calls           int NOT NULL,
    time_zone             text NOT NULL,
    -- events emitted for the tenant aggregate
    version               bigint NOT NULL,
    updated_at            timestamptz NOT NULL
);
-- Open (pending, running, paused) tasks per tenant: the max_tasks check counts them.
CREATE INDEX IF NOT EXISTS task_tasks_open ON task_tasks (tenant_id) WHERE status IN (1, 2, 3);
-- Running tasks per tenant: the entitlement watch pauses those of an expired tenant.
CREATE INDEX IF NOT EXISTS task_tasks_running ON task_tasks (tenant_id) WHERE status = 2;

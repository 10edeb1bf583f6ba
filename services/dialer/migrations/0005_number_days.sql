-- The per-number daily limit (seed 000 call_limit): a task's limit, and the calls each number
-- of a tenant got on each of the tenant's local days, over all its tasks. Kept by the
-- transaction that dials, like the per-line and per-tenant counts. Days older than two are
-- pruned.
ALTER TABLE dialer_tasks ADD COLUMN IF NOT EXISTS daily_call_limit int NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS dialer_number_days (
    tenant_id  text NOT NULL,
    phone      text NOT NULL,
    day        date NOT NULL,
    calls      int NOT NULL,
    PRIMARY KEY (tenant_id, phone, day)
);

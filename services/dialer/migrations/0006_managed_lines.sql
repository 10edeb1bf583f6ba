-- Lines are managed entities of the provider adapter, per tenant; the dialer follows their
-- events (LineCreated, LineUpdated, LineDisabled, LineEnabled) into this table, next to its own
-- counts: calls out, calls on the line's local day, and its pace (the GCRA theoretical arrival
-- time of its next call). A line no event told of (`known` false) places no calls.
-- Lines used to come from WAIHU_DIALER__LINES, shared by every tenant: calls still out on them
-- are counted again per (tenant, line) from the contacts they belong to.
DELETE FROM dialer_lines;
ALTER TABLE dialer_lines DROP CONSTRAINT IF EXISTS dialer_lines_pkey;
ALTER TABLE dialer_lines ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL DEFAULT '';
ALTER TABLE dialer_lines ADD PRIMARY KEY (tenant_id, line_id);
INSERT INTO dialer_lines (tenant_id, line_id, in_flight)
    SELECT t.tenant_id, c.line_id, count(*) FROM dialer_contacts c JOIN dialer_tasks t USING (task_id)
    WHERE c.state = 1 AND c.line_id IS NOT NULL GROUP BY 1, 2;
ALTER TABLE dialer_lines
    ADD COLUMN known           boolean NOT NULL DEFAULT false,
    ADD COLUMN enabled         boolean NOT NULL DEFAULT false,
    ADD COLUMN max_concurrent  int NOT NULL DEFAULT 0,
    ADD COLUMN cps             double precision NOT NULL DEFAULT 0,
    ADD COLUMN daily_cap       int NOT NULL DEFAULT 0,
    ADD COLUMN time_zone       text NOT NULL DEFAULT 'Asia/Shanghai',
    ADD COLUMN caller_number   text NOT NULL DEFAULT '',
    -- last line version applied
    ADD COLUMN version         bigint NOT NULL DEFAULT 0,
    ADD COLUMN pace_at         timestamptz,
    ADD COLUMN day             date,
    ADD COLUMN day_calls       int NOT NULL DEFAULT 0;

-- Calls placed per line per second (Unix seconds), for the line's recent pace; rows older than
-- a minute are pruned.
CREATE TABLE IF NOT EXISTS dialer_line_seconds (
    tenant_id  text NOT NULL,
    line_id    text NOT NULL,
    second     bigint NOT NULL,
    calls      int NOT NULL,
    PRIMARY KEY (tenant_id, line_id, second)
);

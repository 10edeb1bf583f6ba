-- Tenants' lines (trunks), in the provider adapter's own schema. Every change commits with its
-- event in the outbox (LineCreated, LineUpdated, LineDisabled, LineEnabled); the dialer follows
-- those events, never this table.
CREATE TABLE IF NOT EXISTS provider_lines (
    tenant_id       text NOT NULL,
    line_id         text NOT NULL,
    name            text NOT NULL,
    provider        text NOT NULL,
    caller_number   text NOT NULL,
    max_concurrent  int NOT NULL,
    cps             double precision NOT NULL,
    daily_cap       int NOT NULL,
    time_zone       text NOT NULL,
    enabled         boolean NOT NULL,
    version         bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, line_id)
);

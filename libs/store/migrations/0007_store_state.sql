-- Which events stream the store follows: its creation time, and the base added to its
-- sequences to make store positions (non-zero after an operator re-based the store onto a
-- recreated stream). One row per stream name.
CREATE TABLE store_streams (
    stream      text PRIMARY KEY,
    created     timestamptz NOT NULL,
    base        bigint NOT NULL DEFAULT 0,
    rebased_at  timestamptz
);

-- Counters of the store writer: events kept whose payload this build cannot read
-- ('unknown_events') and events it dead-lettered ('dead_lettered').
CREATE TABLE store_counters (
    key    text PRIMARY KEY,
    value  bigint NOT NULL
);

-- Tenant-scoped exports read the store in position order.
CREATE INDEX events_by_tenant ON events (tenant_id, position);

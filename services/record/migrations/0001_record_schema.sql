-- Record service projections, in its own schema. Each call-record column is set by exactly one
-- event type, first writer wins, so events applied in any order give the same row. Databases
-- made before the services owned their schemas had these tables in public: they move here.
ALTER TABLE IF EXISTS public.call_records SET SCHEMA record;
ALTER TABLE IF EXISTS public.task_stat_counters SET SCHEMA record;
ALTER TABLE IF EXISTS public.record_tasks SET SCHEMA record;

CREATE TABLE IF NOT EXISTS call_records (
    call_id       uuid PRIMARY KEY,
    task_id       uuid NOT NULL,
    tenant_id     text NOT NULL,
    contact_no    int NOT NULL,
    -- earliest event time seen for the call: the listing order
    started_at    timestamptz NOT NULL,
    phone         text,
    line_id       text,
    attempt       int,
    requested_at  timestamptz,
    dialing_at    timestamptz,
    ringing_at    timestamptz,
    answered_at   timestamptz,
    released_at   timestamptz,
    ring_ms       bigint,
    talk_ms       bigint,
    answered      boolean,
    cause_q850    int,
    cause_name    text,
    cause_raw     text
);
CREATE INDEX IF NOT EXISTS call_records_by_task ON call_records (task_id, started_at DESC, call_id DESC);
CREATE INDEX IF NOT EXISTS call_records_by_phone ON call_records (phone, started_at DESC);
CREATE INDEX IF NOT EXISTS call_records_by_time ON call_records (started_at DESC, call_id DESC);
-- ListCallRecords by tenant alone.
CREATE INDEX IF NOT EXISTS call_records_by_tenant ON call_records (tenant_id, started_at DESC, call_id DESC);

-- Task statistics as commutative counters (calls_placed, answered, cause:17, outcome:1, ...).
CREATE TABLE IF NOT EXISTS task_stat_counters (
    task_id  uuid NOT NULL,
    key      text NOT NULL,
    value    bigint NOT NULL,
    PRIMARY KEY (task_id, key)
);

-- Which tenant a task belongs to, from TaskCreated: lets reads refuse other tenants' tasks.
CREATE TABLE IF NOT EXISTS record_tasks (
    task_id    uuid PRIMARY KEY,
    tenant_id  text NOT NULL,
    name       text NOT NULL
);

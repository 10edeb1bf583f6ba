-- Issue 9: recordings. One row per call whose recording was announced (RecordingAvailable),
-- stored (RecordingStored), refused (RecordingFailed) or deleted (RecordingDeleted); rebuilt
-- from the store like every projection. state: 1 pending, 2 stored, 3 failed, 4 deleted
-- (waihu.v1.RecordingState).
CREATE TABLE IF NOT EXISTS recordings (
    call_id       uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    task_id       uuid,
    contact_no    int NOT NULL,
    state         smallint NOT NULL,
    source_uri    text,
    key           text,
    content_type  text,
    format        text,
    bytes         bigint,
    duration_ms   bigint,
    sha256        text,
    -- When the provider announced it: the date in its key and the start of its retention.
    recorded_at   timestamptz,
    stored_at     timestamptz,
    deleted_at    timestamptz,
    reason        text,
    -- Store position of the last event that changed the row.
    position      bigint NOT NULL
);
-- The retention sweeper: a tenant's stored recordings, oldest first.
CREATE INDEX IF NOT EXISTS recordings_due ON recordings (tenant_id, recorded_at) WHERE state = 2;

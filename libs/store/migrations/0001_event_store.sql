-- The append-only call-event store. position is the JetStream stream sequence, assigned by the
-- single ordered writer, so catch-up readers never see a lower position commit after a higher one.
CREATE TABLE events (
    position        bigint PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL,
    schema_version  int NOT NULL,
    tenant_id       text NOT NULL,
    stream_id       text NOT NULL,
    stream_version  bigint NOT NULL,
    task_id         uuid,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    correlation_id  text NOT NULL,
    causation_id    text NOT NULL,
    -- The exact bytes that travelled on the bus (protobuf Envelope).
    envelope        bytea NOT NULL
);
CREATE INDEX events_by_stream ON events (stream_id, stream_version);
CREATE INDEX events_by_task ON events (task_id, position);
CREATE INDEX events_by_time ON events (occurred_at);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Where each projection (or the store writer) is up to; written in the same transaction as
-- the rows it covers.
CREATE TABLE checkpoints (
    name        text PRIMARY KEY,
    position    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

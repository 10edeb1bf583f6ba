-- Transactional outbox: a service's decision and the events announcing it commit together;
-- the relay publishes them (Nats-Msg-Id = event_id) and deletes them once JetStream has them.
CREATE TABLE outbox (
    id               bigserial PRIMARY KEY,
    producer         text NOT NULL,
    event_id         uuid NOT NULL,
    -- Nats-Expected-Last-Subject-Sequence, NULL for none.
    expect_last_seq  bigint,
    envelope         bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_by_producer ON outbox (producer, id);

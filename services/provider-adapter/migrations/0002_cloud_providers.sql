-- Cloud providers: a line's non-secret provider settings, its credentials sealed at rest, the
-- calls placed through a provider (our call id <-> the provider's), and the provider's reports
-- of them (callbacks and polls) waiting to be turned into call events.
ALTER TABLE provider_lines ADD COLUMN IF NOT EXISTS provider_config jsonb NOT NULL DEFAULT '{}';

-- AES-256-GCM of the credentials' JSON under the key `key_id`, bound to (tenant, line). The
-- names are kept in clear: they say which credentials are set, never what they are.
CREATE TABLE IF NOT EXISTS provider_line_credentials (
    tenant_id   text NOT NULL,
    line_id     text NOT NULL,
    names       text[] NOT NULL,
    key_id      text NOT NULL,
    sealed      bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, line_id)
);

-- One row per call handed to a cloud provider, written before the request (the intent), so a
-- redelivered dial command never places a second call. `provider_call_id` is null until the
-- provider accepted the call.
CREATE TABLE IF NOT EXISTS provider_calls (
    call_id           uuid PRIMARY KEY,
    tenant_id         text NOT NULL,
    line_id           text NOT NULL,
    provider          text NOT NULL,
    provider_call_id  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    settled_at        timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS provider_calls_by_provider_id
    ON provider_calls (provider, provider_call_id) WHERE provider_call_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS provider_calls_settled ON provider_calls (settled_at)
    WHERE settled_at IS NOT NULL;

-- What providers said about their calls, one row per (call, stage): a duplicate callback
-- collapses here. Deleted when the call settles.
CREATE TABLE IF NOT EXISTS provider_reports (
    call_id      uuid NOT NULL,
    stage        smallint NOT NULL,
    q850         integer NOT NULL DEFAULT 0,
    cause_raw    text NOT NULL DEFAULT '',
    answered     boolean NOT NULL DEFAULT false,
    ring_ms      bigint NOT NULL DEFAULT 0,
    talk_ms      bigint NOT NULL DEFAULT 0,
    raw          text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, stage)
);

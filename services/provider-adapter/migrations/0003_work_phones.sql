-- Work phones (seed 003, 方案一): phones bound to users by a QR code, each with its own token;
-- the commands waiting for them; one-time binding tokens. Bind and unbind are also events
-- (DeviceBound, DeviceUnbound: the seed's device_bindlogs).
CREATE TABLE IF NOT EXISTS provider_devices (
    id              bigserial PRIMARY KEY,
    tenant_id       text NOT NULL,
    user_id         text NOT NULL,
    device_id       text NOT NULL,
    phone_number    text NOT NULL,
    device_name     text NOT NULL DEFAULT '',
    device_model    text NOT NULL DEFAULT '',
    os_type         text NOT NULL,
    os_version      text NOT NULL DEFAULT '',
    app_version     text NOT NULL DEFAULT '',
    -- SHA-256 of the device's token (the token itself is only ever given to the app).
    token_hash      bytea NOT NULL UNIQUE,
    bound_at        timestamptz NOT NULL DEFAULT now(),
    unbound_at      timestamptz,
    online          boolean NOT NULL DEFAULT false,
    last_heartbeat  timestamptz
);
-- One live binding per phone of a tenant.
CREATE UNIQUE INDEX IF NOT EXISTS provider_devices_live
    ON provider_devices (tenant_id, device_id) WHERE unbound_at IS NULL;
CREATE INDEX IF NOT EXISTS provider_devices_by_user ON provider_devices (tenant_id, user_id);

CREATE TABLE IF NOT EXISTS provider_device_binds (
    token_hash  bytea PRIMARY KEY,
    tenant_id   text NOT NULL,
    user_id     text NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- Commands for phones (DIAL_COMMAND, CANCEL_DIAL), kept until the phone has them: a phone
-- offline when its command was made gets it when it comes back, with the same messageId.
CREATE TABLE IF NOT EXISTS provider_device_commands (
    message_id   text PRIMARY KEY,
    device       bigint NOT NULL,
    call_id      uuid,
    -- The call's task and contact (for the events of its recording).
    task_id      text NOT NULL DEFAULT '',
    contact_no   integer NOT NULL DEFAULT 0,
    kind         text NOT NULL,
    body         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- A dial not delivered by then is given up (the call released, device offline).
    expires_at   timestamptz NOT NULL,
    delivered_at timestamptz,
    -- The phone reported on the call (or the command is moot): never sent again.
    done_at      timestamptz
);
CREATE INDEX IF NOT EXISTS provider_device_commands_open
    ON provider_device_commands (device, created_at) WHERE done_at IS NULL;

-- Webhook subscriptions (per tenant) and their deliveries. A delivery is made once per
-- (subscription, store event): its id is derived from both, so fanning the same event out twice
-- adds nothing. Deliveries only cover events stored after the subscription was made
-- (`from_position`, the store's position at creation).
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    webhook_id     uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    url            text NOT NULL,
    secret         text NOT NULL,
    event_types    text[] NOT NULL,
    from_position  bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_by_tenant
    ON webhook_subscriptions (tenant_id, created_at);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id      uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES webhook_subscriptions ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    position         bigint NOT NULL,
    -- The JSON body exactly as every attempt sends it.
    body             text NOT NULL,
    -- 1 pending, 2 delivered, 3 dead (waihu.v1.DeliveryState).
    state            smallint NOT NULL DEFAULT 1,
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      int,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
-- What the sender picks: pending deliveries whose time has come.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON webhook_deliveries (next_attempt_at) WHERE state = 1;
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_webhook
    ON webhook_deliveries (webhook_id, created_at DESC, delivery_id DESC);

-- Do-not-call lists: each tenant's (scope = the tenant id) and the platform's (scope '*', never
-- a tenant id). Checked when a contact is due; its contacts then finish as DO_NOT_CALL.
CREATE TABLE IF NOT EXISTS dialer_dnc (
    scope     text NOT NULL,
    phone     text NOT NULL,
    reason    text NOT NULL,
    added_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, phone)
);

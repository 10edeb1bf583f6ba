-- Click-to-dial calls (DialerService.Dial): one call each, outside any task. A row is the
-- dialer's claim on its line and tenant slot until the call is released (state 1 out, 2 done),
-- kept by the same transactions that count the line; done rows are pruned after a day.
CREATE TABLE IF NOT EXISTS dialer_manual_calls (
    call_id        uuid PRIMARY KEY,
    tenant_id      text NOT NULL,
    phone          text NOT NULL,
    line_id        text NOT NULL,
    state          smallint NOT NULL,
    requested_at   timestamptz NOT NULL,
    released_at    timestamptz
);
CREATE INDEX IF NOT EXISTS dialer_manual_calls_out ON dialer_manual_calls (requested_at) WHERE state = 1;
CREATE INDEX IF NOT EXISTS dialer_manual_calls_done ON dialer_manual_calls (released_at) WHERE state = 2;

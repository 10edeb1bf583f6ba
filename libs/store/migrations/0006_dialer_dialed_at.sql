-- When the contact's current call was requested: the watchdog finds calls out for too long.
ALTER TABLE dialer_contacts ADD COLUMN dialed_at timestamptz;
CREATE INDEX dialer_contacts_out_since ON dialer_contacts (dialed_at) WHERE state = 1;

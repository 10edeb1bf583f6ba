-- GetCallStatus and Hangup look a call up by id before its request reaches the bus: an index
-- on the calls out, so that lookup (and one for an unknown id) is a probe, not a scan.
CREATE INDEX IF NOT EXISTS dialer_contacts_active_call ON dialer_contacts (active_call_id) WHERE state = 1;

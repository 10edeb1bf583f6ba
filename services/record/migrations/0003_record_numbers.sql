-- Every call record has a number (seed 002's integer recordId): the store position of the
-- call's CallRequested, so a rebuild from the store gives every call the same number. Records
-- projected before this migration get theirs from the store (a one-time scan of the requests).
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS record_no bigint;
UPDATE call_records c SET record_no = e.position
FROM events e
WHERE c.record_no IS NULL AND e.event_type = 'CallRequested'
  AND e.stream_id = 'call-' || c.call_id::text;
CREATE UNIQUE INDEX IF NOT EXISTS call_records_by_no ON call_records (record_no);

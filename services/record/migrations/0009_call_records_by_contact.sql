-- Issue 9: a task's contacts with their calls (ListContactCalls; seed 000 getTaskDetail). One
-- more entry per call record (not per event); contact_no never changes, so later updates of a
-- record stay heap-only.
CREATE INDEX IF NOT EXISTS call_records_by_contact ON call_records (task_id, contact_no);

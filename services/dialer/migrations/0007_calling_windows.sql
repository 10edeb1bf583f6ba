-- Calling windows: a task's window (waihu.v1.CallingWindow, encoded; NULL = the dialer's
-- default window) and the zone it is read in for numbers that tell none; the distinct zones its
-- contacts' numbers tell; and, while the window is closed in all of them, when it next opens
-- (rounds pass the task over until then). A contact's own zone is NULL when it is the task's.
ALTER TABLE dialer_tasks
    ADD COLUMN IF NOT EXISTS window_spec bytea,
    ADD COLUMN IF NOT EXISTS window_zone text NOT NULL DEFAULT 'Asia/Shanghai',
    ADD COLUMN IF NOT EXISTS zones text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS closed_until timestamptz;
ALTER TABLE dialer_contacts ADD COLUMN IF NOT EXISTS zone text;

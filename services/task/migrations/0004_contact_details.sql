-- What a contact list row said besides the number (seed 000's task_list name and resume_id), and
-- when it was added, so listings show them. Rows added before this have them NULL.
ALTER TABLE task_contacts ADD COLUMN IF NOT EXISTS name text;
ALTER TABLE task_contacts ADD COLUMN IF NOT EXISTS external_id text;
ALTER TABLE task_contacts ADD COLUMN IF NOT EXISTS added_at timestamptz;
-- Who created a task (the token's user), for seed 000's user_id and for audit.
ALTER TABLE task_tasks ADD COLUMN IF NOT EXISTS created_by text;

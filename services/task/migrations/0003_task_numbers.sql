-- Every task also has a number (seed 002's integer taskId): assigned in creation order, unique
-- across the deployment, never reused. Existing tasks are numbered as the column is added.
ALTER TABLE task_tasks ADD COLUMN IF NOT EXISTS task_no bigserial;
CREATE UNIQUE INDEX IF NOT EXISTS task_tasks_by_no ON task_tasks (task_no);

-- A task's recalls by hangup cause (waihu.v1.RetryPolicy, encoded); NULL = the task's
-- recall_count and recall_interval_s for every retryable cause.
ALTER TABLE dialer_tasks ADD COLUMN IF NOT EXISTS retry_policy bytea;

-- The due-contacts order with its tie-break, so a round reads exactly the rows it dials.
DROP INDEX IF EXISTS dialer_contacts_due;
CREATE INDEX dialer_contacts_due ON dialer_contacts (task_id, next_at, contact_no) WHERE state = 0;

-- Calls in flight per line, kept by the transactions that dial and release (never counted).
CREATE TABLE dialer_lines (
    line_id    text PRIMARY KEY,
    in_flight  int NOT NULL DEFAULT 0
);
INSERT INTO dialer_lines (line_id, in_flight)
    SELECT line_id, count(*) FROM dialer_contacts WHERE state = 1 AND line_id IS NOT NULL
    GROUP BY line_id;

-- Only running tasks are visited.
CREATE INDEX dialer_tasks_running ON dialer_tasks (priority DESC) WHERE status = 2;

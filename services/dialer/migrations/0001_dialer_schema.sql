-- Dialer state, in its own schema: what it has been told (task and call events) and what it
-- decided (with the decision's events in the outbox, same transaction). Databases made before
-- the services owned their schemas had these tables in public: they move here.
ALTER TABLE IF EXISTS public.dialer_tasks SET SCHEMA dialer;
ALTER TABLE IF EXISTS public.dialer_contacts SET SCHEMA dialer;
ALTER TABLE IF EXISTS public.dialer_lines SET SCHEMA dialer;

CREATE TABLE IF NOT EXISTS dialer_tasks (
    task_id            uuid PRIMARY KEY,
    tenant_id          text NOT NULL,
    status             smallint NOT NULL,
    priority           smallint NOT NULL,
    recall_count       int NOT NULL,
    recall_interval_s  int NOT NULL,
    not_before         timestamptz,
    -- the only line the task dials on; empty = any
    caller_line        text NOT NULL,
    -- last task stream_version applied
    version            bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS dialer_tasks_running ON dialer_tasks (priority DESC) WHERE status = 2;

-- state: 0 pending, 1 active (a call is out), 2 finished
CREATE TABLE IF NOT EXISTS dialer_contacts (
    task_id         uuid NOT NULL,
    contact_no      int NOT NULL,
    phone           text NOT NULL,
    state           smallint NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL,
    active_call_id  uuid,
    line_id         text,
    -- when the current call was requested: the watchdog finds calls out for too long
    dialed_at       timestamptz,
    PRIMARY KEY (task_id, contact_no)
);
ALTER TABLE dialer_contacts ADD COLUMN IF NOT EXISTS dialed_at timestamptz;
-- The due-contacts order with its tie-break, so a round reads exactly the rows it dials.
DROP INDEX IF EXISTS dialer_contacts_due;
CREATE INDEX dialer_contacts_due ON dialer_contacts (task_id, next_at, contact_no) WHERE state = 0;
CREATE INDEX IF NOT EXISTS dialer_contacts_active ON dialer_contacts (line_id) WHERE state = 1;
CREATE INDEX IF NOT EXISTS dialer_contacts_out_since ON dialer_contacts (dialed_at) WHERE state = 1;

-- Calls in flight per line, kept by the transactions that dial and release (never counted).
CREATE TABLE IF NOT EXISTS dialer_lines (
    line_id    text PRIMARY KEY,
    in_flight  int NOT NULL DEFAULT 0
);
INSERT INTO dialer_lines (line_id, in_flight)
    SELECT line_id, count(*) FROM dialer_contacts WHERE state = 1 AND line_id IS NOT NULL
    GROUP BY line_id
ON CONFLICT (line_id) DO NOTHING;

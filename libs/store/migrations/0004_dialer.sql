-- Dialer state: what it has been told (task and call events) and what it decided (with the
-- decision's events in the outbox, same transaction).
CREATE TABLE dialer_tasks (
    task_id            uuid PRIMARY KEY,
    tenant_id          text NOT NULL,
    status             smallint NOT NULL,
    priority           smallint NOT NULL,
    recall_count       int NOT NULL,
    recall_interval_s  int NOT NULL,
    not_before         timestamptz,
    caller_line        text NOT NULL,
    -- last task stream_version applied
    version            bigint NOT NULL
);

-- state: 0 pending, 1 active (a call is out), 2 finished
CREATE TABLE dialer_contacts (
    task_id         uuid NOT NULL,
    contact_no      int NOT NULL,
    phone           text NOT NULL,
    state           smallint NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL,
    active_call_id  uuid,
    line_id         text,
    PRIMARY KEY (task_id, contact_no)
);
CREATE INDEX dialer_contacts_due ON dialer_contacts (task_id, next_at) WHERE state = 0;
CREATE INDEX dialer_contacts_active ON dialer_contacts (line_id) WHERE state = 1;

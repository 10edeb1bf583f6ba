-- Task service write model.
CREATE TABLE task_tasks (
    task_id            uuid PRIMARY KEY,
    tenant_id          text NOT NULL,
    name               text NOT NULL,
    -- protobuf TaskSpec as created
    spec               bytea NOT NULL,
    status             smallint NOT NULL,
    contacts_total     int NOT NULL DEFAULT 0,
    contacts_finished  int NOT NULL DEFAULT 0,
    -- number of events emitted for the task aggregate
    version            bigint NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    completed_at       timestamptz
);
CREATE INDEX task_tasks_newest ON task_tasks (tenant_id, created_at DESC, task_id DESC);

CREATE TABLE task_contacts (
    task_id           uuid NOT NULL,
    contact_no        int NOT NULL,
    phone             text NOT NULL,
    finished_outcome  smallint,
    PRIMARY KEY (task_id, contact_no),
    UNIQUE (task_id, phone)
);

-- The task service's write model, in its own schema. Databases made before the services owned
-- their schemas had these tables in public: they move here with their rows and indexes.
ALTER TABLE IF EXISTS public.task_tasks SET SCHEMA task;
ALTER TABLE IF EXISTS public.task_contacts SET SCHEMA task;

CREATE TABLE IF NOT EXISTS task_tasks (
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
CREATE INDEX IF NOT EXISTS task_tasks_newest ON task_tasks (tenant_id, created_at DESC, task_id DESC);

CREATE TABLE IF NOT EXISTS task_contacts (
    task_id           uuid NOT NULL,
    contact_no        int NOT NULL,
    phone             text NOT NULL,
    finished_outcome  smallint,
    PRIMARY KEY (task_id, contact_no),
    UNIQUE (task_id, phone)
);

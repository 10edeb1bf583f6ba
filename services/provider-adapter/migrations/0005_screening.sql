-- Batch number screening (seed 004, 批量筛号). The tables keep the seed's names and fields;
-- call_filter_send_batch_log is folded into call_filter_send_batch (one log row per batch).

-- A screening job (seed call_filter_task). status: ScreeningStatus (1 created, 2 running,
-- 3 done, 4 failed); step: the last job that finished with it (0 none, 1 batches made).
CREATE TABLE IF NOT EXISTS call_filter_task (
    id                uuid PRIMARY KEY,
    tenant_id         text        NOT NULL,
    line_id           text        NOT NULL,
    step              smallint    NOT NULL DEFAULT 0,
    status            smallint    NOT NULL DEFAULT 1,
    batchid           text        NOT NULL DEFAULT '',
    task_id           text        NOT NULL DEFAULT '',
    totalnum          integer     NOT NULL DEFAULT 0,
    batch_size        integer     NOT NULL,
    skip_known_valid  boolean     NOT NULL DEFAULT false,
    skipped           integer     NOT NULL DEFAULT 0,
    creator           text        NOT NULL,
    createtime        timestamptz NOT NULL DEFAULT now(),
    runbegintime      timestamptz,
    runendtime        timestamptz
);
CREATE INDEX IF NOT EXISTS call_filter_task_by_tenant
    ON call_filter_task (tenant_id, createtime DESC, id DESC);
-- Job 1 looks for created jobs only.
CREATE INDEX IF NOT EXISTS call_filter_task_created
    ON call_filter_task (createtime) WHERE status = 1;

-- The numbers of a job (seed call_filter_send_detail), seq in upload order; a batch is a
-- range of seq (call_filter_send_batch.seq_from/seq_to), so making batches writes no row here.
CREATE TABLE IF NOT EXISTS call_filter_send_detail (
    filter_task_id  uuid    NOT NULL REFERENCES call_filter_task (id) ON DELETE CASCADE,
    seq             integer NOT NULL,
    telno           text    NOT NULL,
    PRIMARY KEY (filter_task_id, seq),
    UNIQUE (filter_task_id, telno)
);

-- A batch and its send/query log (seed call_filter_send_batch + call_filter_send_batch_log).
-- status: ScreeningBatchStatus (1 generated, 2 sent, 3 queried, 4 failed). Flags: 0 not yet,
-- 1 started (from) or answered (recv), -1 failed.
CREATE TABLE IF NOT EXISTS call_filter_send_batch (
    filter_task_id     uuid        NOT NULL REFERENCES call_filter_task (id) ON DELETE CASCADE,
    batch_no           integer     NOT NULL,
    tenant_id          text        NOT NULL,
    totalnum           integer     NOT NULL,
    -- Its numbers: call_filter_send_detail rows of the job with seq in [seq_from, seq_to].
    seq_from           integer     NOT NULL,
    seq_to             integer     NOT NULL,
    status             smallint    NOT NULL DEFAULT 1,
    send_fromflag      smallint    NOT NULL DEFAULT 0,
    send_recvflag      smallint    NOT NULL DEFAULT 0,
    send_begintime     timestamptz,
    send_recvtime      timestamptz,
    send_res_suminfo   text        NOT NULL DEFAULT '',
    query_fromflag     smallint    NOT NULL DEFAULT 0,
    query_recvflag     smallint    NOT NULL DEFAULT 0,
    query_begintime    timestamptz,
    query_recvtime     timestamptz,
    query_res_suminfo  text        NOT NULL DEFAULT '',
    provider_ref       text        NOT NULL DEFAULT '',
    -- The batch's results by validity once queried (progress without counting every number).
    valid_n            integer     NOT NULL DEFAULT 0,
    invalid_n          integer     NOT NULL DEFAULT 0,
    unknown_n          integer     NOT NULL DEFAULT 0,
    attempts           integer     NOT NULL DEFAULT 0,
    -- When a job may next look at it (a failed send or an unready query waits).
    next_at            timestamptz NOT NULL DEFAULT now(),
    -- Who works on it until when (replicas share the batches).
    lease_until        timestamptz,
    createtime         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (filter_task_id, batch_no)
);
-- Jobs 2 and 3 look for generated and sent batches only.
CREATE INDEX IF NOT EXISTS call_filter_send_batch_open
    ON call_filter_send_batch (next_at) WHERE status IN (1, 2);

-- Each screened number's result (seed call_filter_send_queryres).
CREATE TABLE IF NOT EXISTS call_filter_send_queryres (
    filter_task_id   uuid        NOT NULL REFERENCES call_filter_task (id) ON DELETE CASCADE,
    batch_no         integer     NOT NULL,
    phone            text        NOT NULL,
    call_status      text        NOT NULL,
    billsec          integer     NOT NULL,
    call_start_time  timestamptz,
    answer_time      timestamptz,
    call_end_time    timestamptz,
    wait_time        integer     NOT NULL,
    q850             integer     NOT NULL,
    raw_cause        text        NOT NULL,
    validity         smallint    NOT NULL,
    createtime       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (filter_task_id, batch_no, phone)
);

-- What is known of each tenant's numbers (NumberValidity: 1 unknown, 2 valid, 3 invalid).
-- version grows with every change of a number (taken under the row's lock, so a later commit
-- has a higher one): the dialer applies changes only over older ones.
CREATE SEQUENCE IF NOT EXISTS number_validity_version;
CREATE TABLE IF NOT EXISTS number_validity (
    tenant_id   text        NOT NULL,
    phone       text        NOT NULL,
    validity    smallint    NOT NULL,
    source      text        NOT NULL,
    q850        integer     NOT NULL DEFAULT 0,
    raw_cause   text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     bigint      NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);

-- Provider campaigns (seed 001 ai_visitor_call_task): the calls a task handed over at once to a
-- provider with a campaign API, and where each stands. The intent (state 1, creating) is
-- committed before the provider is asked; a restart looks the campaign up by name (the
-- campaign id) before creating it, so a crash in between never creates a second one.
CREATE TABLE IF NOT EXISTS provider_campaigns (
    campaign_id   uuid        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    task_id       uuid        NOT NULL,
    line_id       text        NOT NULL,
    -- How many calls the dialer handed over in it.
    calls         integer     NOT NULL,
    -- 0 collecting the handed-over calls, then pb CampaignState: 1 creating, 2 running,
    -- 3 paused, 4 stopped, 5 done, 6 failed.
    state         smallint    NOT NULL DEFAULT 0,
    provider      text        NOT NULL DEFAULT '',
    provider_ref  text        NOT NULL DEFAULT '',
    -- The campaign stream's version (campaign-<id>).
    version       bigint      NOT NULL DEFAULT 0,
    synced        integer     NOT NULL DEFAULT 0,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text        NOT NULL DEFAULT '',
    -- A failed step is tried again from then (backoff).
    retry_at      timestamptz,
    -- The provider may have been asked to create it (a restart looks it up by name first).
    create_sent   boolean     NOT NULL DEFAULT false,
    -- The end of the calling window it was handed over in: stopped at the provider then, and
    -- what was not called released as not placed. Null = no end.
    place_until   timestamptz,
    -- When the provider first said it was over while results were still missing.
    over_since    timestamptz,
    next_sync_at  timestamptz NOT NULL DEFAULT now(),
    -- The worker holding it, until when (a column, so nothing waits while a provider is asked).
    lease_token   uuid,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS provider_campaigns_open ON provider_campaigns (created_at)
    WHERE state IN (0, 1, 2, 3, 4);
CREATE INDEX IF NOT EXISTS provider_campaigns_task ON provider_campaigns (task_id);

-- Each handed-over call (seed 001 ai_visitor_list), with its request envelope so that its
-- events can be published after it (the call ledger) when the result is synced.
CREATE TABLE IF NOT EXISTS provider_campaign_calls (
    campaign_id   uuid     NOT NULL REFERENCES provider_campaigns ON DELETE CASCADE,
    call_id       uuid     NOT NULL,
    contact_no    integer  NOT NULL,
    -- Its place in the campaign as created (hand-over order), set when the campaign closes.
    seq           integer  NOT NULL DEFAULT 0,
    phone         text     NOT NULL,
    attempt       integer  NOT NULL,
    caller_number text     NOT NULL,
    request       bytea    NOT NULL,
    request_seq   bigint   NOT NULL,
    synced        boolean  NOT NULL DEFAULT false,
    PRIMARY KEY (campaign_id, call_id)
);
-- A provider's push about a call finds its campaign (and brings its sync forward).
CREATE INDEX IF NOT EXISTS provider_campaign_calls_call ON provider_campaign_calls (call_id);

-- The tasks' state as their events tell it (followed for pause, resume and cancel).
CREATE TABLE IF NOT EXISTS provider_campaign_tasks (
    task_id    uuid     PRIMARY KEY,
    tenant_id  text     NOT NULL,
    status     smallint NOT NULL,
    version    bigint   NOT NULL
);

-- The simulator's campaign API keeps its campaigns here, as a provider would on its side:
-- created, paused (its clock stops), resumed and stopped, and each call's result a pure
-- function of (seed, number, attempt) at a pace of [simulator] campaign_rate calls a second.
CREATE TABLE IF NOT EXISTS sim_campaigns (
    ref           bigserial   PRIMARY KEY,
    tenant_id     text        NOT NULL,
    name          text        NOT NULL,
    -- 1 running, 5 paused, 4 stopped (as Tencent's task states).
    state         smallint    NOT NULL DEFAULT 1,
    -- Running time before running_since (ms); running_since is null unless running.
    run_ms        bigint      NOT NULL DEFAULT 0,
    running_since timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Names are not unique, as at a real provider: creating twice makes two campaigns.
CREATE INDEX IF NOT EXISTS sim_campaigns_name ON sim_campaigns (tenant_id, name);

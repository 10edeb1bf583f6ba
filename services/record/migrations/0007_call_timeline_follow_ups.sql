-- Issue 9: the records the seeds' users work with.
--
-- Every event of a call, by store position: GetCallRecord reads the call's timeline from the
-- store by primary key instead of an index on stream id that every append would pay for.
-- Appended in store order by the projections (call lifecycle, recordings, analyses,
-- follow-ups). Records projected before this migration get theirs from the store in one pass.
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS event_positions bigint[] NOT NULL DEFAULT '{}';
UPDATE call_records c SET event_positions = x.positions
FROM (
    SELECT substr(stream_id, 6)::uuid AS call_id, array_agg(position ORDER BY position) AS positions
    FROM events
    WHERE stream_id LIKE 'call-%' AND length(stream_id) = 41
    GROUP BY 1
) x
WHERE c.call_id = x.call_id AND c.event_positions = '{}';

-- Seed 002's analysisStatus: NULL until an analysis event arrives (then PENDING for an answered
-- call, NONE for another, decided when read); 3 completed, 4 failed (waihu.v1.AnalysisStatus).
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS analysis_status smallint;
CREATE INDEX IF NOT EXISTS call_records_by_line ON call_records (tenant_id, line_id, started_at DESC, call_id DESC);

-- The latest analysis of each call (AnalysisCompleted, or AnalysisFailed while none completed).
CREATE TABLE IF NOT EXISTS call_analyses (
    call_id     uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    task_id     uuid,
    status      smallint NOT NULL,
    intent      text NOT NULL DEFAULT '',
    grade       text NOT NULL DEFAULT '',
    sentiment   text NOT NULL DEFAULT '',
    keywords    text[] NOT NULL DEFAULT '{}',
    summary     text NOT NULL DEFAULT '',
    language    text NOT NULL DEFAULT '',
    transcript  text NOT NULL DEFAULT '',
    analyzer    text NOT NULL DEFAULT '',
    failure     text NOT NULL DEFAULT '',
    -- Store position of the event these values come from: a later one replaces them.
    position    bigint NOT NULL
);

-- Seed 003's post-call form: one row per FollowUpAdded.
CREATE TABLE IF NOT EXISTS follow_ups (
    follow_up_id  uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    call_id       uuid NOT NULL,
    task_id       uuid,
    contact_no    int NOT NULL,
    phone         text NOT NULL,
    result        text NOT NULL,
    intention     text NOT NULL,
    note          text NOT NULL,
    next_at       timestamptz,
    added_by      text NOT NULL,
    added_at      timestamptz NOT NULL,
    position      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS follow_ups_by_call ON follow_ups (call_id, position);
-- The to-do list: a tenant's follow-ups by due time.
CREATE INDEX IF NOT EXISTS follow_ups_due ON follow_ups (tenant_id, next_at, follow_up_id)
    WHERE next_at IS NOT NULL;

-- Where each task is (1 created, 2 running, 3 paused, 4 completed, 5 cancelled: the last task
-- event in store order): the dashboard's running tasks and the end of WatchTaskStats.
ALTER TABLE record_tasks ADD COLUMN IF NOT EXISTS state smallint NOT NULL DEFAULT 1;
UPDATE record_tasks t SET state = x.state
FROM (
    SELECT DISTINCT ON (task_id) task_id,
        CASE event_type WHEN 'TaskStarted' THEN 2 WHEN 'TaskResumed' THEN 2 WHEN 'TaskPaused' THEN 3
                        WHEN 'TaskCompleted' THEN 4 ELSE 5 END AS state
    FROM events
    WHERE event_type IN ('TaskStarted', 'TaskResumed', 'TaskPaused', 'TaskCompleted', 'TaskCancelled')
      AND task_id IS NOT NULL
    ORDER BY task_id, position DESC
) x
WHERE t.task_id = x.task_id;

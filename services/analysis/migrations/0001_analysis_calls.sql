-- The analysis service's work: one row per call it has something to analyse for (a transcript,
-- or a stored recording for the ASR backend), with where that analysis stands. The events
-- (TranscriptAvailable, AnalysisCompleted, AnalysisFailed) are the history; this is the queue.
CREATE TABLE IF NOT EXISTS analysis_calls (
    call_id uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    task_id uuid,
    contact_no integer NOT NULL DEFAULT 0,
    -- What is analysed (at most 100,000 bytes) and who made it: "sim", a provider type, "asr".
    transcript text,
    transcript_source text NOT NULL DEFAULT '',
    language text NOT NULL DEFAULT '',
    -- The transcript event this row last took (a redelivery of it changes nothing).
    transcript_event uuid,
    -- The stored recording (RecordingStored), for the ASR backend.
    recording_key text,
    recording_format text NOT NULL DEFAULT '',
    recording_content_type text NOT NULL DEFAULT '',
    recording_bytes bigint NOT NULL DEFAULT 0,
    -- 1 pending (due at next_at), 2 completed, 3 failed (gave up).
    state smallint NOT NULL,
    -- Bumped whenever the work changes (a new transcript, a reanalysis): a worker's result for
    -- an older generation is dropped.
    generation integer NOT NULL DEFAULT 1,
    attempts integer NOT NULL DEFAULT 0,
    next_at timestamptz,
    -- "local" or "llm" when a reanalysis named one; NULL: the tenant's configured analyzer.
    analyzer_override text,
    -- Transcribe the recording even though there is a transcript (a reanalysis asked).
    retranscribe boolean NOT NULL DEFAULT false,
    -- The analyzer of the current analysis, the last completed result (an encoded
    -- AnalysisCompleted) and the last failure.
    analyzer text NOT NULL DEFAULT '',
    result bytea,
    failure text NOT NULL DEFAULT '',
    -- Events published for this call's analysis stream so far.
    events integer NOT NULL DEFAULT 0,
    correlation_id text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS analysis_calls_due ON analysis_calls (next_at) WHERE state = 1;

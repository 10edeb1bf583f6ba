-- The W3C trace context of the event that last started or resumed a task: each call a dial round
-- places for the task gets a span in that trace, so a call can be followed from the StartTask
-- request through the dialer, the provider and the record service. Empty when tracing is off.
ALTER TABLE dialer_tasks
    ADD COLUMN IF NOT EXISTS traceparent text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS tracestate text NOT NULL DEFAULT '';

-- Every index on the event store is paid for on every append, by the one ordered writer.
-- Nothing reads the store by stream, so that index goes; occurred_at follows position closely
-- (events are stored in the order they are published), so a BRIN index serves time ranges at a
-- fraction of a B-tree's cost to maintain.
DROP INDEX IF EXISTS events_by_stream;
DROP INDEX IF EXISTS events_by_time;
CREATE INDEX events_by_time ON events USING brin (occurred_at) WITH (pages_per_range = 32);

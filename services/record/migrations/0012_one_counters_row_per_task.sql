-- A task's statistics counters in one row (its keys and their values, side by side, in byte
-- order) instead of one row per key. Each projection transaction wrote one row per task and key it
-- changed: about eleven for every task with a call in the batch. A campaign of 100 running tasks
-- spreads each batch over most of them, and those row writes were the largest part of the
-- 1,000,000-contact bench's extra database work over a two-task campaign (12.5 WAL records an
-- attempt against 0.7). The projector, the counters' only writer, reads the rows of the batch's
-- tasks, adds its changes and writes each row once: 3.0 WAL records an attempt, and 9 buffer
-- reads instead of 32 (7 December 2026).
CREATE TABLE task_counters (
    task_id  uuid PRIMARY KEY,
    keys     text[] COLLATE "C" NOT NULL,
    vals     bigint[] NOT NULL,
    CHECK (cardinality(keys) = cardinality(vals))
) WITH (fillfactor = 50);

INSERT INTO task_counters (task_id, keys, vals)
SELECT task_id, array_agg(key ORDER BY key), array_agg(value ORDER BY key)
FROM task_stat_counters
GROUP BY task_id;

DROP TABLE task_stat_counters;

-- One row per task and key, as the table was: for reads by hand and for tools.
CREATE VIEW task_stat_counters AS
SELECT c.task_id, u.key, u.value
FROM task_counters c, unnest(c.keys, c.vals) AS u(key, value);

-- Per-task and per-tenant postings replace the event store's B-tree indexes on (task_id, position)
-- and (tenant_id, position), which were a third of the cost of every append. For each batch it
-- appends, the store writer adds one row per task and one per tenant in the batch, listing where
-- their events are as ranges of consecutive positions, instead of one index entry per event per
-- index. A task's or a tenant's events are read by walking its rows in position order and
-- fetching the positions they list.
CREATE TABLE event_task_postings (
    task_id        uuid NOT NULL,
    -- The greatest position listed. A key's rows never overlap: each lists positions after
    -- those of the rows before it.
    last_position  bigint NOT NULL,
    -- Inclusive ranges, in order: {first, last, first, last, ...} (ranges[1] is the first).
    ranges         bigint[] NOT NULL,
    PRIMARY KEY (task_id, last_position)
);
CREATE TABLE event_tenant_postings (
    tenant_id      text NOT NULL,
    last_position  bigint NOT NULL,
    ranges         bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, last_position)
);
CREATE TRIGGER event_task_postings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON event_task_postings FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER event_tenant_postings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON event_tenant_postings FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Finding where postings end, whatever the tenant.
CREATE INDEX event_tenant_postings_by_position ON event_tenant_postings (last_position);

-- Adds the postings of every event after position `after` (none are posted yet), in rows of at
-- most 2,000 positions: runs of consecutive positions per key (position minus its rank is the same
-- along a run). Run below for what the store holds, and by the store writer at the start of each
-- term for what a writer of an earlier release appended after this migration (every event has a
-- tenant posting, so the greatest tenant posting is where postings end). Returns the events posted.
CREATE FUNCTION events_post_after(after bigint) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO event_task_postings (task_id, last_position, ranges)
    SELECT task_id, max(v), array_agg(v ORDER BY s, k)
    FROM (
        SELECT task_id, bucket, min(position) AS s, max(position) AS e
        FROM (SELECT task_id, position / 2000 AS bucket, position,
                     position - row_number() OVER (PARTITION BY task_id ORDER BY position) AS run
              FROM events WHERE position > after AND task_id IS NOT NULL) p
        GROUP BY task_id, bucket, run
    ) r, unnest(ARRAY[s, e]) WITH ORDINALITY AS u(v, k)
    GROUP BY task_id, bucket;
    WITH posted AS (
        INSERT INTO event_tenant_postings (tenant_id, last_position, ranges)
        SELECT tenant_id, max(v), array_agg(v ORDER BY s, k)
        FROM (
            SELECT tenant_id, bucket, min(position) AS s, max(position) AS e
            FROM (SELECT tenant_id, position / 2000 AS bucket, position,
                         position - row_number() OVER (PARTITION BY tenant_id ORDER BY position) AS run
                  FROM events WHERE position > after) p
            GROUP BY tenant_id, bucket, run
        ) r, unnest(ARRAY[s, e]) WITH ORDINALITY AS u(v, k)
        GROUP BY tenant_id, bucket
        RETURNING ranges
    )
    SELECT coalesce(sum(r.e - r.s + 1), 0)::bigint
    FROM posted, LATERAL (SELECT ranges[2 * i - 1] AS s, ranges[2 * i] AS e
                          FROM generate_series(1, cardinality(ranges) / 2) i) r;
$$;

-- What the store already holds. A writer of the earlier release appending meanwhile waits (its
-- later appends are posted by the next writer term of this release).
LOCK TABLE events IN SHARE MODE;
SELECT events_post_after(0);

DROP INDEX IF EXISTS events_by_task;
DROP INDEX IF EXISTS events_by_tenant;

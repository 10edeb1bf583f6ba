-- The text keys of the call records' indexes (tenant, phone, line) and of the task statistics'
-- counters compare byte by byte ("C") instead of through the database's default collation. The
-- order is the same for UTF-8 (byte order is code point order, as C.UTF-8 sorts), but the
-- comparisons are plain memcmp: every projected call inserts into three indexes keyed by these
-- (by phone, by tenant, by line), and every counter change probes the counters' key. PostgreSQL
-- rebuilds those indexes here (no table rewrite), holding the tables locked meanwhile.
ALTER TABLE call_records
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN phone TYPE text COLLATE "C",
    ALTER COLUMN line_id TYPE text COLLATE "C";
ALTER TABLE task_stat_counters ALTER COLUMN key TYPE text COLLATE "C";

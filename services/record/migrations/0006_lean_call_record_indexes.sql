-- Every read of call records is within a tenant (ListCallRecords, GetCallRecord, the gateway),
-- served by call_records_by_tenant (or by task, phone, number): the index on time alone is
-- paid for on every projected call and read by nothing.
DROP INDEX IF EXISTS call_records_by_time;
-- Room on each page for a row's later versions: a call's events often land in different
-- batches, and an update that changes no indexed column stays on its page (HOT) and touches no
-- index.
ALTER TABLE call_records SET (fillfactor = 85);

-- Every dial and release updates a contact row out of the due index: vacuum the table early so
-- the index's dead entries do not make each round's due-contact probes longer as a campaign goes.
ALTER TABLE dialer_contacts SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);

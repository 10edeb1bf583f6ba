-- The projections follow the event store on their own connection and checkpoint. A database
-- whose store writer applied them in its own transaction has them exactly as far as the store.
INSERT INTO checkpoints (name, position, updated_at)
SELECT 'projections', position, now() FROM checkpoints WHERE name = 'store'
ON CONFLICT (name) DO NOTHING;

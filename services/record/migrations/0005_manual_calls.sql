-- Click-to-dial calls (DialerService.Dial) belong to no task: their records have no task id.
ALTER TABLE call_records ALTER COLUMN task_id DROP NOT NULL;

-- Reports and uploads find a phone's command by the call; settled commands are pruned.
CREATE INDEX IF NOT EXISTS provider_device_commands_by_call
    ON provider_device_commands (call_id, device);
CREATE INDEX IF NOT EXISTS provider_device_commands_done
    ON provider_device_commands (done_at) WHERE done_at IS NOT NULL;

-- Provider-campaign mode (seed 001): a task with campaign_size > 0 hands its due contacts over
-- to its line's provider in campaigns of at most that many; a contact handed over is in flight
-- (state 1) with the campaign's id until its call's release comes back from the provider
-- adapter's sync. Such calls hold no line slot and no tenant concurrency: the provider paces
-- them.
ALTER TABLE dialer_tasks ADD COLUMN IF NOT EXISTS campaign_size integer NOT NULL DEFAULT 0;
ALTER TABLE dialer_contacts ADD COLUMN IF NOT EXISTS campaign_id uuid;
-- Whether a task has a campaign out, per round, without visiting its contacts.
CREATE INDEX IF NOT EXISTS dialer_contacts_campaign_out ON dialer_contacts (task_id)
    WHERE state = 1 AND campaign_id IS NOT NULL;
-- Calls of a contact released as never placed (a campaign stopped at its window's end before
-- reaching it): the first few are not charged as attempts; after that they are, so nothing
-- loops forever.
ALTER TABLE dialer_contacts ADD COLUMN IF NOT EXISTS unplaced smallint NOT NULL DEFAULT 0;

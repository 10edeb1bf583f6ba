-- Regions (号码归属地): a line's caller number's province and city, as its events tell, for
-- choosing the caller number nearest the callee and for tasks that dial only numbers in their
-- line's city (number_city_limit).
ALTER TABLE dialer_lines
    ADD COLUMN IF NOT EXISTS province text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS city text NOT NULL DEFAULT '';
ALTER TABLE dialer_tasks ADD COLUMN IF NOT EXISTS number_city_limit boolean NOT NULL DEFAULT false;

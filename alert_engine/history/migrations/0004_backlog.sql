-- The backlog per period of a trend (`alert_engine.history.backlog`): each day's cases by the hour
-- they fired in and the day they were closed on (`rollups.BACKLOG_KEY`), so that the cases open
-- at any midnight, and their ages, are counted from the roll-ups. Filled again from `case_facts`
-- by the runner after this migration (`migrate._FILLS`).
ALTER TABLE daily_rollups
    ADD COLUMN backlog_keys   integer[] NOT NULL DEFAULT '{}',
    ADD COLUMN backlog_counts integer[] NOT NULL DEFAULT '{}';

-- The cases closed after a moment (the backlog at the end of a range that ends mid-day).
CREATE INDEX case_facts_state_at ON case_facts (state_at);

-- The dashboard's filter values for any range are read from the roll-ups of the days it touches
-- (`planner.filter_options`): with the values and their alert counts in the index, an index-only
-- scan, not a heap read of every row of those days.
-- It leads with the day, so it also serves what `daily_rollups_day` did (a day's refresh).
CREATE INDEX daily_rollups_day_values ON daily_rollups (day) INCLUDE (dimension, value, alerts);
DROP INDEX daily_rollups_day;

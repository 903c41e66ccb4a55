-- Each UTC day's outcome figures per value of each dimension (and 'all'), summed from
-- `case_facts` by `alert_engine.history.rollups`: counts and sums that add up across days, and
-- the durations as sparse histograms in fixed geometric buckets (`rollups.RATIO`), so that a
-- view of months reads a row per day and value instead of every alert. Recomputed from
-- `case_facts` for the fired days of the alerts each batch touches, in the batch's transaction.
CREATE TABLE daily_rollups (
    dimension                text NOT NULL,
    value                    text NOT NULL,
    day                      date NOT NULL,
    alerts                   integer NOT NULL,
    claimed                  integer NOT NULL,
    resolved                 integer NOT NULL,
    not_actionable           integer NOT NULL,
    still_open               integer NOT NULL,
    -- Alerts with a claim-by time (`record.sla.claim_by`), and those claimed by then.
    with_sla                 integer NOT NULL,
    claimed_in_time          integer NOT NULL,
    recovered_sent           integer NOT NULL,
    recovered_answered       integer NOT NULL,
    recovered_paired         integer NOT NULL,
    recovered_initial_sum    bigint NOT NULL,
    recovered_followup_sum   bigint NOT NULL,
    recovered_change_sum     bigint NOT NULL,
    recovered_change_squares bigint NOT NULL,
    recovered_nps_n          integer NOT NULL,
    recovered_nps_before_net integer NOT NULL,
    recovered_nps_after_net  integer NOT NULL,
    holdout_sent             integer NOT NULL,
    holdout_answered         integer NOT NULL,
    holdout_paired           integer NOT NULL,
    holdout_initial_sum      bigint NOT NULL,
    holdout_followup_sum     bigint NOT NULL,
    holdout_change_sum       bigint NOT NULL,
    holdout_change_squares   bigint NOT NULL,
    holdout_nps_n            integer NOT NULL,
    holdout_nps_before_net   integer NOT NULL,
    holdout_nps_after_net    integer NOT NULL,
    -- Time to claim and to resolve: bucket numbers (ascending) and how many cases fell in each.
    claim_buckets            smallint[] NOT NULL,
    claim_counts             integer[] NOT NULL,
    resolve_buckets          smallint[] NOT NULL,
    resolve_counts           integer[] NOT NULL,
    -- Cases open now, by the UTC hour of the day they fired in (their age is told from it).
    open_hours               smallint[] NOT NULL,
    open_counts              integer[] NOT NULL,
    PRIMARY KEY (dimension, value, day)
);
-- A view of one dimension's every value over a range of days; the refresh of a day.
CREATE INDEX daily_rollups_dimension_day ON daily_rollups (dimension, day);
CREATE INDEX daily_rollups_day ON daily_rollups (day);

-- The roll-ups are `case_facts` summed: emptying it (a rebuild, a test) empties them too.
CREATE FUNCTION daily_rollups_follow_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE daily_rollups;
    RETURN NULL;
END
$$;
CREATE TRIGGER case_facts_truncated AFTER TRUNCATE ON case_facts
    FOR EACH STATEMENT EXECUTE FUNCTION daily_rollups_follow_truncate();

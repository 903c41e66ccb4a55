-- The outcome history: one row per fact, each keyed so that a replay or a second worker writes
-- nothing twice. `record` keeps the whole Kafka record (fields added later land there first);
-- `source_*` is where it was read.

CREATE TABLE alerts (
    alert_id         text PRIMARY KEY,
    rule             text NOT NULL,
    severity         text NOT NULL,
    route            text NOT NULL,
    team             text NOT NULL,
    agent            text NOT NULL,
    channel          text NOT NULL,
    customer_id      text,
    fired_at         timestamptz NOT NULL,
    event_time       timestamptz NOT NULL,
    -- The rating and NPS the alert was about (the "before" of the follow-up answer).
    initial_rating   smallint,
    initial_nps      smallint,
    record           jsonb NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL
);
-- The report: a date range, optionally one value of a dimension.
CREATE INDEX alerts_fired_at ON alerts (fired_at);
CREATE INDEX alerts_team_fired_at ON alerts (team, fired_at);
CREATE INDEX alerts_agent_fired_at ON alerts (agent, fired_at);
CREATE INDEX alerts_rule_fired_at ON alerts (rule, fired_at);

-- What the recovery team did: every record of the `cases` topic but the follow-up side's own
-- (`rerated` -> followup_answers, `holdout` -> holdout_assignments).
CREATE TABLE case_transitions (
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    alert_id         text NOT NULL,
    state            text NOT NULL,
    previous_state   text,
    action           text,
    actor            text NOT NULL,
    user_id          text,
    at               timestamptz NOT NULL,
    reason           text,
    note             text,
    assignee         text,
    record           jsonb NOT NULL,
    PRIMARY KEY (source_topic, source_partition, source_offset),
    -- The same change published twice (a producer's retry lands at another offset).
    UNIQUE NULLS NOT DISTINCT (alert_id, state, at, action)
);
CREATE INDEX case_transitions_alert_at ON case_transitions (alert_id, at);

CREATE TABLE holdout_assignments (
    alert_id         text PRIMARY KEY,
    assigned_at      timestamptz NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL
);

-- What became of each scheduled survey (the `followups` topic): sent, suppressed, no_email,
-- rejected.
CREATE TABLE followup_sends (
    survey_id        text PRIMARY KEY,
    alert_id         text NOT NULL,
    outcome          text NOT NULL,
    at               timestamptz NOT NULL,
    holdout          boolean NOT NULL,
    record           jsonb NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL
);
CREATE INDEX followup_sends_alert ON followup_sends (alert_id);

-- The customers' answers (`rerated` records of the `cases` topic), one per rating id.
CREATE TABLE followup_answers (
    rating_id        text PRIMARY KEY,
    alert_id         text NOT NULL,
    rating           smallint NOT NULL,
    previous_rating  smallint,
    nps              smallint,
    comment          text,
    answered_at      timestamptz NOT NULL,
    record           jsonb NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL
);
CREATE INDEX followup_answers_alert ON followup_answers (alert_id, answered_at);

-- Each alert's case folded from the rows above (first claim, latest change of state, owner,
-- follow-up sent, first answer), refreshed in the transaction that writes any row of the alert
-- (`alert_engine.history.facts`): the report reads one row per alert, not the log.
CREATE TABLE case_facts (
    alert_id         text PRIMARY KEY,
    rule             text NOT NULL,
    severity         text NOT NULL,
    route            text NOT NULL,
    team             text NOT NULL,
    agent            text NOT NULL,
    channel          text NOT NULL,
    member           text NOT NULL,
    fired_at         timestamptz NOT NULL,
    initial_rating   smallint,
    initial_nps      smallint,
    holdout          boolean NOT NULL,
    claimed_at       timestamptz,
    state            text,
    state_at         timestamptz,
    -- The reason code of the latest change of state (a resolution's), if it had one.
    reason           text,
    sent             boolean NOT NULL,
    followup_rating  smallint,
    followup_nps     smallint
);
CREATE INDEX case_facts_fired_at ON case_facts (fired_at);
CREATE INDEX case_facts_team_fired_at ON case_facts (team, fired_at);
CREATE INDEX case_facts_agent_fired_at ON case_facts (agent, fired_at);
CREATE INDEX case_facts_member_fired_at ON case_facts (member, fired_at);

"""The closed loop: follow-up surveys after recovery, and the measured outcome.

`timing` computes when a survey goes out, `schedule` keeps the schedule durable in Redis,
`tokens` signs the survey links, `survey` serves the survey pages, `mailer` sends the emails,
`service` ties them to the `cases` topic, and `sends` is the record of each settled survey that
the worker publishes for the outcome history (`alert_engine.history`, where the figures are).
"""

"""The console: the recovery team's web UI behind sign-in. The queue (`queue`: which cases a
filter selects, in what order, one page at a time; `views`: `/console` and the small JSON view
the page polls), a case's page and its actions (`case_page`, through `actions`, which the outbox
page shares), where a case stands against its SLA (`sla`), and the pages' stylesheet
(`style`)."""

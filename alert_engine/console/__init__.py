"""The console: the recovery team's web UI behind sign-in. So far its queue (`queue`: which cases
a filter selects, in what order, one page at a time; `views`: `/console` and the small JSON view
the page polls). The case page and its actions are not built yet: cases are acted on in Slack or
on the outbox page."""

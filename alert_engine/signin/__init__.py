"""Sign-in for the worker's internal pages.

The worker's port is public (Slack's button clicks and the customers' survey links reach it), so
every other page needs a signed-in member: behind an authenticating proxy (`proxy`), through the
built-in login against a members file (`members`, `passwords`, `sessions`, `csrf`, `ratelimit`,
`views`), or, with neither configured, as the generated `demo` member through a one-time link
written to the worker's log (`demo`). `gate` puts them together for `worker.webguard`.
"""

"""The worker: the Faust app, its topics, every agent, timer and page, built from settings."""

"""Stand-ins for the SaaS the engine talks to and we cannot run locally (Slack), checking the real
contract; used by the tests and by the load benchmark."""

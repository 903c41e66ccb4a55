"""Redis as the engine uses it: every key name, first writes, riding out an outage."""

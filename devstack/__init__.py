"""The local development stack: Kafka and Redis on loopback, the demo, worker processes.

Used by the tests and `make demo`; not part of the shipped package."""

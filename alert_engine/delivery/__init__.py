"""Delivering alerts: the deliverer and its ledger, muting (silences, inhibition), digests,
escalation, per-destination gates, and alerts whose delivery failed for good."""

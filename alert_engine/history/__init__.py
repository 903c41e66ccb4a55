"""The outcome history in PostgreSQL: alerts, case transitions, follow-up sends and answers and
holdout assignments, projected from the Kafka topics that carry them (`projection`), rebuildable
from those topics (`replay`), and the report's figures computed from it in SQL (`queries`).

Kafka stays the record; these tables are a projection of it that any number of workers may
write at once (every row keyed by its ids and its source topic, partition and offset, written with
`INSERT ... ON CONFLICT DO NOTHING`). Redis keeps only hot state.
"""

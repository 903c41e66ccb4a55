"""Cases: what the recovery team does about an alert, and the records of it on the `cases` topic.

`records` holds the models, `lifecycle` the rules (a pure function), `store` the Redis side.
What each module names in its `__all__` is re-exported here: `from alert_engine.cases import
CaseStore` keeps working, and a new public name is listed once, beside its definition.
"""

# Star imports of modules that each declare `__all__`: the names they list, and only those.
from alert_engine.cases import lifecycle, records, store
from alert_engine.cases.lifecycle import *  # noqa: F403
from alert_engine.cases.records import *  # noqa: F403
from alert_engine.cases.store import *  # noqa: F403

__all__ = [*lifecycle.__all__, *records.__all__, *store.__all__]

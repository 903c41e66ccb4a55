"""What became of a due survey, as a record of the `followups` topic (JSON, keyed by alert id):
sent, or settled without a send (suppressed, no email address, refused by the email service).

The outcome history (`alert_engine.history`) reads them: without this topic a send is known to
Redis alone, and the history could not be rebuilt from Kafka.
"""

from __future__ import annotations

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from alert_engine.followup.schedule import Settled


class FollowupSettled(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    alert_id: str = Field(min_length=1, max_length=128)
    survey_id: str = Field(min_length=1, max_length=128)
    outcome: Settled
    at: AwareDatetime
    # The survey of a case held out of recovery (the holdout cohort's).
    holdout: bool = False
    rule: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> FollowupSettled:
        return cls.model_validate_json(raw)

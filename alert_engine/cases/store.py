"""Cases in Redis: each change made atomically by one Lua script, whoever asks for it.

Two people clicking at once, or a click Slack delivers twice, change a case once: an action that
is not valid from the case's current state changes nothing and says why (`Refusal`), and neither
does an action on an alert the store was never given (`CaseStore.remember`, at first delivery).
The script is the Redis side of `lifecycle.decide`: the same table (`TRANSITIONS`, passed in),
the same checks, the same result, which a differential test keeps so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
from redis.asyncio import Redis

from alert_engine.alerts import Alert
from alert_engine.cases.lifecycle import (
    TRANSITIONS,
    CasePolicy,
    CaseRequest,
    Refusal,
    RefusalReason,
    check_request,
    epoch_ms,
    normalized,
    refusal_message,
)
from alert_engine.cases.records import (
    CASE_TTL_SECONDS,
    CLOSED,
    FINAL_ACTIONS,
    Case,
    CaseEvent,
    CaseState,
    HistoryEntry,
    Rerating,
)
from alert_engine.storage import redis_keys
from alert_engine.storage.first_write import FirstWrites

__all__ = ["CaseStore"]

_CLOSED_LUA = "{" + ", ".join(f"['{state.value}'] = true" for state in sorted(CLOSED)) + "}"
_FINAL_LUA = "{" + ", ".join(f"['{action.value}'] = true" for action in sorted(FINAL_ACTIONS)) + "}"

# KEYS: the case hash, its history list, the open-cases index. ARGV: 1 action, 2 target state
# ('' when it stays or is restored), 3 the states it may be taken from (comma-separated), 4 actor
# id, 5 actor name, 6 source, 7 now (epoch ms), 8 now (ISO), 9 undo until (epoch ms), 10 undo
# until (ISO), 11 reopen period (ms; -1 for none), 12 reason, 13 note, 14 assignee id,
# 15 assignee name, 16 TTL (s), 17 alert id. Returns {'ok', history entry JSON, the alert, and
# after the change: claimed by, claimed at, undo until} or {'refused', reason, state, assignee}.
_ATTEMPT = (
    """
local case, history, open = KEYS[1], KEYS[2], KEYS[3]
local CLOSED = """
    + _CLOSED_LUA
    + """
local FINAL = """
    + _FINAL_LUA
    + """
local f = redis.call('HMGET', case, 'alert', 'state', 'assignee', 'assignee_name', 'closed_ms',
  'undo_action', 'undo_state', 'undo_assignee', 'undo_assignee_name', 'undo_until_ms',
  'delivered_ms')
local state = f[2] or 'open'
local assignee = f[3] or ''
local assignee_name = f[4] or ''
local owner = assignee_name ~= '' and assignee_name or assignee
local function refuse(reason) return {'refused', reason, state, owner} end
if not f[1] then return refuse('unknown_case') end
local action, target = ARGV[1], ARGV[2]
local allowed = false
for source in string.gmatch(ARGV[3], '[^,]+') do
  if source == state then allowed = true end
end
if not allowed then return refuse('not_from_state') end
local now_ms = tonumber(ARGV[7])
if action == 'reassign' and state == 'claimed' and assignee == ARGV[14] then
  return refuse('same_assignee')
end
local undo_action = f[6] or ''
if action == 'undo' then
  if undo_action == '' or not f[7] then return refuse('nothing_to_undo') end
  if not f[10] or now_ms > tonumber(f[10]) then return refuse('undo_expired') end
  target = f[7]
end
if action == 'reopen' and tonumber(ARGV[11]) >= 0 and f[5]
   and now_ms > tonumber(f[5]) + tonumber(ARGV[11]) then
  return refuse('reopen_expired')
end
if target == '' then target = state end
local entry = {action = action, previous_state = state, state = target, at = ARGV[8],
  user_id = ARGV[4], user_name = ARGV[5], source = ARGV[6]}
if ARGV[12] ~= '' then entry.reason = ARGV[12] end
if ARGV[13] ~= '' then entry.note = ARGV[13] end
if action == 'claim' or action == 'reassign' then
  local who, name = ARGV[4], ARGV[5]
  if action == 'reassign' then who, name = ARGV[14], ARGV[15] end
  redis.call('HSET', case, 'assignee', who, 'claimed_by', who, 'claimed_at', ARGV[8])
  if name ~= '' then
    redis.call('HSET', case, 'assignee_name', name)
    entry.assignee_name = name
  else
    redis.call('HDEL', case, 'assignee_name')
  end
  redis.call('HSETNX', case, 'first_claimed_at', ARGV[8])
  entry.assignee = who
elseif action == 'unclaim' or action == 'reopen' then
  redis.call('HDEL', case, 'assignee', 'assignee_name', 'claimed_by', 'claimed_at')
  if action == 'reopen' then
    redis.call('HDEL', case, 'closed_by', 'closed_at', 'closed_ms', 'reason')
  end
elseif FINAL[action] then
  redis.call('HSET', case, 'closed_by', ARGV[4], 'closed_at', ARGV[8], 'closed_ms', ARGV[7],
    'undo_action', action, 'undo_state', state, 'undo_until', ARGV[10], 'undo_until_ms', ARGV[9])
  if ARGV[12] ~= '' then redis.call('HSET', case, 'reason', ARGV[12])
  else redis.call('HDEL', case, 'reason') end
  if assignee ~= '' then redis.call('HSET', case, 'undo_assignee', assignee)
  else redis.call('HDEL', case, 'undo_assignee') end
  if assignee_name ~= '' then redis.call('HSET', case, 'undo_assignee_name', assignee_name)
  else redis.call('HDEL', case, 'undo_assignee_name') end
elseif action == 'undo' then
  entry.undone = undo_action
  redis.call('HDEL', case, 'closed_by', 'closed_at', 'closed_ms', 'reason', 'assignee',
    'assignee_name')
  if f[8] then redis.call('HSET', case, 'assignee', f[8]) end
  if f[9] then redis.call('HSET', case, 'assignee_name', f[9]) end
end
if action ~= 'note' and not FINAL[action] then
  redis.call('HDEL', case, 'undo_action', 'undo_state', 'undo_assignee', 'undo_assignee_name',
    'undo_until', 'undo_until_ms')
end
redis.call('HSET', case, 'state', target)
if CLOSED[target] then
  redis.call('ZREM', open, ARGV[17])
elseif CLOSED[state] then
  local since = f[11] and tonumber(f[11]) / 1000 or now_ms / 1000
  redis.call('ZADD', open, 'NX', since, ARGV[17])
end
local encoded = cjson.encode(entry)
redis.call('RPUSH', history, encoded)
redis.call('EXPIRE', case, ARGV[16])
redis.call('EXPIRE', history, ARGV[16])
local after = redis.call('HMGET', case, 'claimed_by', 'claimed_at', 'undo_until')
return {'ok', encoded, f[1], after[1] or '', after[2] or '', after[3] or ''}
"""
)

# KEYS[1] the case hash, KEYS[2] the open-cases index. ARGV: the alert (JSON), TTL, alert id, now
# (epoch s), now (epoch ms), now (ISO). The alert is kept once; the case counts as open from its
# first delivery until it is closed (a delivery again of a closed case's alert does not open it).
_REMEMBER = """
redis.call('HSETNX', KEYS[1], 'alert', ARGV[1])
redis.call('HSETNX', KEYS[1], 'delivered_ms', ARGV[5])
redis.call('HSETNX', KEYS[1], 'delivered_at', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'open' or state == 'claimed' or state == 'reopened' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[3])
end
return 1
"""


class CaseStore:
    def __init__(self, redis: Redis, prefix: str, policy: CasePolicy | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.policy = policy or CasePolicy()
        self._attempt = redis.register_script(_ATTEMPT)
        self._remember = redis.register_script(_REMEMBER)
        self._first_writes = FirstWrites(redis)

    def _keys(self, alert_id: str) -> list[str]:
        return [
            redis_keys.case(self.prefix, alert_id),
            redis_keys.case_history(self.prefix, alert_id),
            redis_keys.open_cases(self.prefix),
        ]

    async def remember(self, alert: Alert) -> None:
        """Keep the alert with its case (once), so case changes can carry it; the case is open
        from now until it is closed."""
        now = datetime.now(UTC)
        await self._remember(
            keys=[redis_keys.case(self.prefix, alert.id), redis_keys.open_cases(self.prefix)],
            args=[
                alert.to_json(),
                CASE_TTL_SECONDS,
                alert.id,
                time.time(),
                epoch_ms(now),
                now.isoformat(),
            ],
        )

    async def open_count(self, now: float | None = None) -> int:
        """Cases not closed yet (open, claimed or reopened). A case untouched since its alert was
        delivered CASE_TTL_SECONDS ago has expired with its record and no longer counts."""
        key = redis_keys.open_cases(self.prefix)
        expired_before = (time.time() if now is None else now) - CASE_TTL_SECONDS
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", f"({expired_before}")
            pipe.zcard(key)
            _, count = await pipe.execute()
        return int(count)

    async def remember_slack_message(self, alert_id: str, channel: str, ts: str) -> None:
        """Keep where the alert was posted in Slack (the first post wins: escalations and
        digests elsewhere do not move its thread)."""
        await self._first_writes.write(
            redis_keys.case(self.prefix, alert_id),
            {"slack_message": f"{channel} {ts}"},
            ttl_seconds=CASE_TTL_SECONDS,
        )

    async def record_rerating(self, alert_id: str, rerating: Rerating) -> None:
        key = redis_keys.case(self.prefix, alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "rerated", rerating.summary())
            pipe.expire(key, CASE_TTL_SECONDS)
            await pipe.execute()

    async def rerating_replied(self, alert_id: str, rerating: Rerating) -> None:
        await self.redis.hset(
            redis_keys.case(self.prefix, alert_id), "rerated_replied", rerating.rating_id
        )

    async def get(self, alert_id: str) -> Case:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(redis_keys.case(self.prefix, alert_id))
            pipe.lrange(redis_keys.case_history(self.prefix, alert_id), 0, -1)
            raw, history = await pipe.execute()
        fields = {_text(key): _text(value) for key, value in raw.items()}
        return Case.model_validate(
            {
                "alert_id": alert_id,
                **fields,
                "history": [HistoryEntry.model_validate_json(entry) for entry in history],
            }
        )

    async def get_many(self, alert_ids: Sequence[str], chunk: int = 200) -> list[Case]:
        """The cases of `alert_ids`, in their order, without their history. Read `chunk` to a
        pipelined round trip on one connection of the pool (the delivery path shares it; a
        gather of single reads exhausted it), and parsed once in a thread (thousands of
        records are CPU the event loop must not spend). An id without a record reads as a case
        with no alert."""
        found: list[dict[bytes | str, bytes | str]] = []
        for start in range(0, len(alert_ids), chunk):
            async with self.redis.pipeline(transaction=False) as pipe:
                for alert_id in alert_ids[start : start + chunk]:
                    pipe.hgetall(redis_keys.case(self.prefix, alert_id))
                found.extend(await pipe.execute())
        if not found:
            return []
        return await asyncio.to_thread(_cases_of, alert_ids, found)

    async def attempt(
        self, alert_id: str, request: CaseRequest, *, reopen_limit: bool = True
    ) -> CaseEvent | Refusal:
        """The change made (to publish), or why nothing changed."""
        problem = check_request(request, self.policy)
        if problem is not None:
            return problem
        request = normalized(request)
        target, sources = TRANSITIONS[request.action]
        undo_until = request.at + timedelta(milliseconds=round(self.policy.undo_seconds * 1000))
        result = await self._attempt(
            keys=self._keys(alert_id),
            args=[
                request.action.value,
                target.value if target is not None else "",
                ",".join(sorted(sources)),
                request.actor.id,
                request.actor.name,
                request.actor.source,
                epoch_ms(request.at),
                request.at.isoformat(),
                epoch_ms(undo_until),
                undo_until.isoformat(),
                round(self.policy.reopen_seconds * 1000) if reopen_limit else -1,
                request.reason or "",
                request.note or "",
                request.assignee or "",
                request.assignee_name or "",
                CASE_TTL_SECONDS,
                alert_id,
            ],
        )
        outcome, *rest = (_text(part) for part in result)
        if outcome != "ok":
            reason, state, assignee = rest
            found = CaseState(state)
            return Refusal(
                RefusalReason(reason),
                refusal_message(
                    RefusalReason(reason), request.action, found, assignee or None, self.policy
                ),
                found,
            )
        # What the record says of the case is as the script left it, whatever came after.
        encoded, alert_json, claimed_by, claimed_at, undoable_until = rest
        after = Case.model_validate(
            {
                "alert_id": alert_id,
                "claimed_by": claimed_by or None,
                "claimed_at": claimed_at or None,
                "undo_until": undoable_until or None,
            }
        )
        entry = HistoryEntry.model_validate(orjson.loads(encoded))
        return entry.event(alert_id, Alert.model_validate_json(alert_json), after)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _cases_of(
    alert_ids: Sequence[str], records: Sequence[dict[bytes | str, bytes | str]]
) -> list[Case]:
    return [
        Case.model_validate(
            {"alert_id": alert_id, **{_text(key): _text(value) for key, value in fields.items()}}
        )
        for alert_id, fields in zip(alert_ids, records, strict=True)
    ]

"""A stand-in for Slack's Web API on loopback, for the real slack_sdk client to talk to.

It checks what Slack checks for the methods the engine calls (bearer token, channel, required
arguments, Block Kit size limits, metadata shape) and keeps the messages, so tests can see what a
channel would show. It can be told to fail: answer 429 with Retry-After, or 500, for N requests
or for a while (`outage`); fail one method always (`failing_methods`) or the posts of given
alerts (`poisoned`); and it can run a hook after storing a post and before answering (to kill a
worker right there).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from standins.threaded_server import ThreadedServer

TOKEN = "xoxb-test-token"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None = None
    updates: int = 0
    # When the request arrived (time.time()), for the load benchmark's latency.
    received_at: float = 0.0

    @property
    def alert_id(self) -> str:
        """The alert id in the metadata, which every card the engine posts carries."""
        if self.metadata is None:
            raise AssertionError(f"message {self.ts} has no metadata")
        alert: str = self.metadata["event_payload"]["alert_id"]
        return alert


@dataclass
class Ephemeral:
    """A message only `user` sees (`chat.postEphemeral`)."""

    channel: str
    user: str
    text: str


@dataclass
class SlackStandIn:
    channels: set[str] = field(default_factory=lambda: {"C0RECOVERY", "C0ESCALATE"})
    messages: list[Message] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    ephemerals: list[Ephemeral] = field(default_factory=list)
    # Modals opened (`views.open`): the view as sent, and its trigger id.
    views: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    after_post: Callable[[Message], None] | None = None
    # The client ends (address, port) requests came from: one per connection.
    connections: set[Any] = field(default_factory=set)
    # Seconds each call takes to answer (a slow Slack), and the most calls seen in flight at once.
    answer_after: float = 0.0
    most_in_flight: int = 0
    _in_flight: int = 0
    # An outage (`outage`): until `_limited_until` every call is rate limited (429 with
    # Retry-After), then until `_down_until` Slack fails (500); the answers given, by status.
    _limited_until: float = 0.0
    _down_until: float = 0.0
    _retry_after: int = 1
    outage_answers: dict[int, int] = field(default_factory=dict)
    # A method that always fails: method -> (HTTP status, Slack error), e.g. a token without
    # `channels:history` gets ("conversations.history": (200, "missing_scope")).
    failing_methods: dict[str, tuple[int, str]] = field(default_factory=dict)
    # Posts of these alert ids (message metadata) always fail with 500: an alert that cannot be
    # delivered while every other can.
    poisoned: set[str] = field(default_factory=set)
    # Posts refused that way, by alert id.
    refused_posts: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def fail_next(self, count: int, status: int, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self.failures.extend([(status, headers)] * count)

    def outage(self, rate_limited: float, failing: float, retry_after: int = 5) -> None:
        """From now: `rate_limited` seconds of 429 with `Retry-After: retry_after`, then
        `failing` seconds of 500."""
        now = time.time()
        with self._lock:
            self._limited_until = now + rate_limited
            self._down_until = now + rate_limited + failing
            self._retry_after = retry_after

    def posts(self, channel: str | None = None) -> list[Message]:
        """Top-level messages (not thread replies)."""
        with self._lock:
            return [
                m
                for m in self.messages
                if m.thread_ts is None and (channel is None or m.channel == channel)
            ]

    def replies(self, ts: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.thread_ts == ts]

    # --- the API -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        with self._lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            if self.answer_after:
                await asyncio.sleep(self.answer_after)
            return await self._answer(request)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        arrived = time.time()
        method = request.match_info["method"]
        with self._lock:
            self.calls.append(method)
            self.connections.add(
                request.transport.get_extra_info("peername") if request.transport else None
            )
            failure = self.failures.pop(0) if self.failures else None
            now = time.time()
            if failure is None and now < self._down_until:
                limited = now < self._limited_until
                status = 429 if limited else 500
                failure = (status, {"Retry-After": str(self._retry_after)} if limited else {})
                self.outage_answers[status] = self.outage_answers.get(status, 0) + 1
        if failure is None and method in self.failing_methods:
            status, error = self.failing_methods[method]
            return web.json_response({"ok": False, "error": error}, status=status)
        if failure is not None:
            status, headers = failure
            error = "ratelimited" if status == 429 else "internal_error"
            return web.json_response({"ok": False, "error": error}, status=status, headers=headers)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            error = "not_authed" if "Authorization" not in request.headers else "invalid_auth"
            return self._error(error)
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(orjson.loads(await request.read()))
            else:
                args.update(dict(await request.post()))
        if method == "chat.postMessage":
            return await self._post(args, arrived)
        handler = {
            "chat.update": self._update,
            "chat.postEphemeral": self._ephemeral,
            "views.open": self._open_view,
            "conversations.history": self._history,
        }.get(method)
        if handler is None:
            return self._error("unknown_method")
        return await handler(args)

    def _error(self, error: str) -> web.Response:
        # Slack answers API errors with HTTP 200 and ok=false.
        return web.json_response({"ok": False, "error": error})

    def _check_content(self, args: dict[str, Any]) -> str | None:
        if args.get("channel") not in self.channels:
            return "channel_not_found"
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = orjson.loads(blocks)
            args["blocks"] = blocks
        if not args.get("text") and not blocks:
            return "no_text"
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > 50):
            return "invalid_blocks"
        if len(args.get("text") or "") > 40_000:
            return "msg_too_long"
        return None

    async def _post(self, args: dict[str, Any], arrived: float) -> web.Response:
        error = self._check_content(args)
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = orjson.loads(metadata)
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            error = error or "invalid_metadata_format"
        if error:
            return self._error(error)
        poisoned = (metadata or {}).get("event_payload", {}).get("alert_id")
        if poisoned in self.poisoned:
            with self._lock:
                self.refused_posts[poisoned] = self.refused_posts.get(poisoned, 0) + 1
            return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        thread_ts = args.get("thread_ts")
        with self._lock:
            if thread_ts is not None and not any(m.ts == thread_ts for m in self.messages):
                return self._error("thread_not_found")
            message = Message(
                channel=args["channel"],
                ts=f"{int(time.time())}.{next(self._clock):06d}",
                text=args.get("text") or "",
                blocks=args.get("blocks") or [],
                metadata=metadata,
                thread_ts=thread_ts,
                received_at=arrived,
            )
            self.messages.append(message)
        if self.after_post is not None and thread_ts is None:
            await asyncio.to_thread(self.after_post, message)
        return web.json_response(
            {"ok": True, "channel": message.channel, "ts": message.ts, "message": {}}
        )

    async def _update(self, args: dict[str, Any]) -> web.Response:
        error = self._check_content(args)
        if error:
            return self._error(error)
        with self._lock:
            found = next(
                (
                    m
                    for m in self.messages
                    if m.ts == args.get("ts") and m.channel == args["channel"]
                ),
                None,
            )
            if found is None:
                return self._error("message_not_found")
            found.text = args.get("text") or found.text
            found.blocks = args.get("blocks") or found.blocks
            found.updates += 1
        return web.json_response({"ok": True, "channel": found.channel, "ts": found.ts})

    async def _ephemeral(self, args: dict[str, Any]) -> web.Response:
        if args.get("channel") not in self.channels:
            return self._error("channel_not_found")
        if not args.get("user"):
            return self._error("user_not_in_channel")
        if not args.get("text") and not args.get("blocks"):
            return self._error("no_text")
        with self._lock:
            self.ephemerals.append(
                Ephemeral(args["channel"], str(args["user"]), args.get("text") or "")
            )
        return web.json_response({"ok": True, "message_ts": f"{time.time():.6f}"})

    async def _open_view(self, args: dict[str, Any]) -> web.Response:
        view = args.get("view")
        if isinstance(view, str):
            view = orjson.loads(view)
        trigger = args.get("trigger_id")
        if not trigger:
            return self._error("invalid_trigger_id")
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            return self._error("invalid_arguments")
        if len(view.get("blocks") or []) > 100:
            return self._error("invalid_arguments")
        with self._lock:
            self.views.append((str(trigger), view))
        return web.json_response({"ok": True, "view": {"id": f"V{len(self.views):08d}", **view}})

    async def _history(self, args: dict[str, Any]) -> web.Response:
        channel = args.get("channel")
        if channel not in self.channels:
            return self._error("channel_not_found")
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        inclusive = str(args.get("inclusive")).lower() in ("1", "true")
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata")).lower() in ("1", "true")
        with self._lock:
            found = [
                m
                for m in reversed(self.messages)
                if m.channel == channel
                and m.thread_ts is None
                and float(m.ts) >= oldest
                and (float(m.ts) <= latest if inclusive else float(m.ts) < latest)
            ][:limit]
        return web.json_response(
            {
                "ok": True,
                "has_more": False,
                "messages": [
                    {
                        "type": "message",
                        "ts": m.ts,
                        "text": m.text,
                        "blocks": m.blocks,
                        **({"metadata": m.metadata} if with_metadata and m.metadata else {}),
                    }
                    for m in found
                ],
            }
        )

    # --- running -------------------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        self._server = ThreadedServer("the Slack stand-in")
        self.port = self._server.start("/api/{method}", self.handle)
        return self

    def stop(self) -> None:
        self._server.stop()

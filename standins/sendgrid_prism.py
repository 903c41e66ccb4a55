"""SendGrid's published API contract served by Stoplight Prism as a validating mock.

`standins/sendgrid/` holds SendGrid's own OpenAPI description (trimmed to the paths the engine
calls, with its licence); its paths carry no `/v3`
(the server URL does) while the sendgrid library calls `/v3/...`, so a copy with prefixed paths is
served. With `--errors` Prism answers 202 only to a request the contract allows, 400 to a body that
breaks the schema, 401 without credentials.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from devstack.workerprocess import free_port
from standins.threaded_server import ThreadedServer

ROOT = Path(__file__).parents[1]
SPEC = ROOT / "standins" / "sendgrid" / "sendgrid-v3-mail-send.json"
PRISM = ROOT / "node_modules" / ".bin" / "prism"


class PrismMock:
    def __init__(self, workdir: Path) -> None:
        if not SPEC.exists():
            raise RuntimeError(f"SendGrid's API description is missing: {SPEC}")
        if not PRISM.exists():
            raise RuntimeError(f"Prism is not installed ({PRISM}); run `make setup`")
        spec = json.loads(SPEC.read_text())
        spec["paths"] = {f"/v3{path}": item for path, item in spec["paths"].items()}
        spec["servers"] = [{"url": "/"}]
        self.spec_path = workdir / "sendgrid-v3-prefixed.json"
        self.spec_path.write_text(json.dumps(spec))
        self.log_path = workdir / "prism.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> PrismMock:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(PRISM),
                    "mock",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "--errors",
                    str(self.spec_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prism exited:\n{self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prism did not start:\n{self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    status: int
    # False for a request the proxy answered itself during a simulated outage.
    forwarded: bool = True


class RecordingProxy:
    """A pass-through in front of the Prism mock that keeps each request's JSON body and the
    status Prism answered (Prism itself keeps no bodies): what SendGrid would have received.

    `outage(seconds)` makes it answer 500 and 503 in turn, without forwarding, for that long:
    SendGrid having a bad spell."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.recorded: list[Recorded] = []
        self.port = 0
        self._lock = threading.Lock()
        self._outage_until = 0.0

    def outage(self, seconds: float) -> None:
        with self._lock:
            self._outage_until = time.monotonic() + seconds

    def _in_outage(self) -> bool:
        with self._lock:
            return time.monotonic() < self._outage_until

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self) -> list[Recorded]:
        with self._lock:
            return list(self.recorded)

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._in_outage():
            with self._lock:
                status = (500, 503)[len(self.recorded) % 2]
                self.recorded.append(
                    Recorded(request.path, json.loads(body) if body else {}, status, False)
                )
            return web.json_response(
                {"errors": [{"message": "simulated outage", "field": None}]}, status=status
            )
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("host", "content-length")
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.target + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            answer_body = await answer.read()
            status = answer.status
            content_type = answer.headers.get("Content-Type")
        with self._lock:
            self.recorded.append(Recorded(request.path, json.loads(body) if body else {}, status))
        return web.Response(
            status=status, body=answer_body, headers={"Content-Type": content_type or "text/plain"}
        )

    def start(self) -> RecordingProxy:
        self._server = ThreadedServer("the recording proxy")
        self.port = self._server.start("/{tail:.*}", self._forward)
        return self

    def stop(self) -> None:
        self._server.stop()

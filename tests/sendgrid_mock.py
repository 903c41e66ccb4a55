"""SendGrid's published API contract served by Stoplight Prism as a validating mock.

`../shared/specs/sendgrid-v3.json` is SendGrid's own OpenAPI description; its paths carry no `/v3`
(the server URL does) while the sendgrid library calls `/v3/...`, so a copy with prefixed paths is
served. With `--errors` Prism answers 202 only to a request the contract allows, 400 to a body that
breaks the schema, 401 without credentials.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

from alert_engine.workerprocess import free_port

ROOT = Path(__file__).parents[1]
SPEC = ROOT.parent / "shared" / "specs" / "sendgrid-v3.json"
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

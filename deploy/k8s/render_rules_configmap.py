"""Writes rules-configmap.yaml from the files in rules/ (`make k8s-rules`); a test keeps the two
identical, so the manifests never ship other rules than the repository's."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = """\
# The alert rules, one key per file, mounted at ALERT_ENGINE_RULES_DIR. Generated from rules/ by
# `make k8s-rules` (a test keeps it identical). Check a change with `alert-engine rules check`
# before applying it; workers reload changed rules (ALERT_ENGINE_RULES_RELOAD_SECONDS).
apiVersion: v1
kind: ConfigMap
metadata:
  name: alert-engine-rules
  labels:
    app.kubernetes.io/name: alert-engine
data:
"""


def render() -> str:
    parts = [HEADER]
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        parts.append(f"  {path.name}: |\n")
        parts.extend(f"    {line}\n" if line else "\n" for line in path.read_text().splitlines())
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "deploy" / "k8s" / "rules-configmap.yaml").write_text(render())

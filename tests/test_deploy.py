"""The deployment files: valid YAML, the objects operations need, settings the worker knows."""

from pathlib import Path

import yaml
from pydantic_settings import BaseSettings

from alert_engine import settings as settings_module
from alert_engine.rules import load_ruleset

ROOT = Path(__file__).parents[1]
K8S = ROOT / "deploy" / "k8s"

# Read by the Slack and email destinations (in progress); the Secret already carries them.
PENDING_SECRETS = {
    "ALERT_ENGINE_SLACK_BOT_TOKEN",
    "ALERT_ENGINE_SLACK_SIGNING_SECRET",
    "ALERT_ENGINE_SENDGRID_API_KEY",
}


def manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return docs


def by_kind(kind: str) -> list[dict]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def known_env_names() -> set[str]:
    names = set()
    for model in vars(settings_module).values():
        if (
            isinstance(model, type)
            and issubclass(model, BaseSettings)
            and model is not BaseSettings
        ):
            prefix = model.model_config.get("env_prefix", "")
            names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return names


def test_every_object_operations_needs_is_there():
    kinds = {doc["kind"] for doc in manifests()}
    assert kinds >= {
        "Namespace",
        "Deployment",
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
    }
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_workers_run_three_replicas_with_probes_on_ready_and_health():
    [deployment] = by_kind("Deployment")
    assert deployment["spec"]["replicas"] == 3
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert sources == {"alert-engine-config", "alert-engine-secrets"}
    [pdb] = by_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_every_configured_variable_is_a_setting_the_worker_reads():
    config = next(d for d in by_kind("ConfigMap") if d["metadata"]["name"] == "alert-engine-config")
    [secret] = by_kind("Secret")
    assert set(config["data"]) <= known_env_names()
    assert set(secret["stringData"]) <= known_env_names() | PENDING_SECRETS
    partitions = int(config["data"]["ALERT_ENGINE_KAFKA_PARTITIONS"])
    [deployment] = by_kind("Deployment")
    assert partitions >= deployment["spec"]["replicas"]


def test_redis_keeps_its_data_on_a_volume_with_the_append_only_file():
    [redis] = by_kind("StatefulSet")
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]


def test_the_rules_config_map_is_the_rules_directory_and_loads_as_mounted(tmp_path):
    rules = next(d for d in by_kind("ConfigMap") if d["metadata"]["name"] == "alert-engine-rules")
    files = {p.name: p.read_text() for p in (ROOT / "rules").glob("*.yaml")}
    assert rules["data"] == files
    # Mounted as Kubernetes does: the files in a hidden timestamped dir, reached by symlinks.
    hidden = tmp_path / "..2026_01_01_00_00_00.000"
    hidden.mkdir()
    for name, text in rules["data"].items():
        (hidden / name).write_text(text)
    (tmp_path / "..data").symlink_to(hidden.name)
    for name in rules["data"]:
        (tmp_path / name).symlink_to(Path("..data") / name)
    assert load_ruleset(tmp_path).version == load_ruleset(ROOT / "rules").version


def test_the_compose_file_is_valid_yaml_with_the_stack():
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    assert set(compose["services"]) >= {"kafka", "redis", "worker"}
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert set(worker["environment"]) <= known_env_names()
    assert "--appendonly" in compose["services"]["redis"]["command"]

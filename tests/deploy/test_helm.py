"""The Helm chart (deploy/helm/alert-engine), rendered by a real `helm` (built by `make setup`)
and validated against the Kubernetes schemas; and the compose file."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from alert_engine import settings as settings_module
from alert_engine.routing import load_routing
from alert_engine.rules.load import load_ruleset

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "alert-engine"
HELM = ROOT / ".cache" / "bin" / "helm"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas known.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
# The workers' Secret (the chart's PostgreSQL has one of its own).
SECRETS = "ae-alert-engine-secrets"
# Everything switched on that a production install would set.
FULL = [
    "ingress.enabled=true",
    "serviceMonitor.enabled=true",
    "secrets.slackBotToken=xoxb-1",
    "secrets.slackSigningSecret=s3cret",
    "secrets.sendgridApiKey=SG.1",
    "secrets.followupTokenSecret=t0ken",
    "settings.publicUrl=https://alerts.example.com",
]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM.exists(), f"{HELM} is missing: run `make setup` (it builds helm with Go)"
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def render(
    *sets: str, values: dict[str, Any] | None = None, tmp_path: Path | None = None
) -> list[dict[str, Any]]:
    args = ["template", "ae", str(CHART), "--namespace", "alert-engine"]
    for value in sets:
        args += ["--set", value]
    if values is not None:
        assert tmp_path is not None
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def refused(*sets: str) -> str:
    result = helm("template", "ae", str(CHART), *(a for s in sets for a in ("--set", s)))
    assert result.returncode != 0, "helm rendered values it should refuse"
    return result.stderr


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    [doc] = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return doc


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


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_the_chart_lints_strictly() -> None:
    result = helm("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "sets",
    [
        [],
        FULL,
        ["redis.enabled=false", "redis.url=redis://r:6379/0"],
        ["postgresql.enabled=false", "secrets.databaseUrl=postgresql://ae:pw@db:5432/ae"],
    ],
)
def test_every_rendered_object_is_valid_against_the_kubernetes_schemas(sets: list[str]) -> None:
    docs = render(*sets)
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a CRD: not in Kubernetes' own schemas
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_broken_object_is_refused_by_the_schema_check() -> None:
    # The check above can fail: a misspelt field is an error in strict mode.
    deployment = one(render(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


def test_workers_are_one_consumer_group_with_probes_on_ready_and_health() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    [container] = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "web"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "web"}
    config = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    assert ports["web"] == int(config["ALERT_ENGINE_WEB_PORT"])
    assert config["ALERT_ENGINE_KAFKA_SESSION_TIMEOUT"] == "10"
    assert int(config["ALERT_ENGINE_KAFKA_PARTITIONS"]) >= deployment["spec"]["replicas"]
    # Every ConfigMap and Secret the pods read is rendered.
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    volumes = {v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v}
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    assert sources | volumes <= rendered
    # The outbox is written where a volume is mounted.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(config["ALERT_ENGINE_OUTBOX_PATH"]).parent) in mounts
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_more_workers_than_partitions_is_refused() -> None:
    assert "would never get a partition" in refused("worker.replicas=5", "kafka.partitions=4")


def test_a_misspelt_value_is_refused_by_the_values_schema() -> None:
    assert "replica" in refused("worker.replica=3")
    assert "bootstrap" in refused("kafka.bootstrap=kafka")


def test_every_configured_variable_is_a_setting_the_worker_reads() -> None:
    docs = render(*FULL, "worker.extraEnv.ALERT_ENGINE_BATCH_SIZE=200")
    config = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    secret = one(docs, "Secret", SECRETS)["stringData"]
    assert set(config) <= known_env_names()
    assert set(secret) == {
        "ALERT_ENGINE_SLACK_BOT_TOKEN",
        "ALERT_ENGINE_SLACK_SIGNING_SECRET",
        "ALERT_ENGINE_SENDGRID_API_KEY",
        "ALERT_ENGINE_FOLLOWUP_TOKEN_SECRET",
    }
    assert set(secret) <= known_env_names()
    assert config["ALERT_ENGINE_BATCH_SIZE"] == "200"
    assert config["ALERT_ENGINE_FOLLOWUP_PUBLIC_URL"] == "https://alerts.example.com"


def test_unset_secrets_are_left_out_so_those_destinations_use_the_outbox() -> None:
    # An empty ALERT_ENGINE_SLACK_BOT_TOKEN would be a token "", not "no Slack".
    assert one(render(), "Secret", SECRETS)["stringData"] == {}
    docs = render("secrets.slackBotToken=xoxb-1")
    assert one(docs, "Secret", SECRETS)["stringData"] == {"ALERT_ENGINE_SLACK_BOT_TOKEN": "xoxb-1"}
    # A Secret managed elsewhere is used, not rendered.
    docs = render("secrets.existingSecret=vault-synced", "postgresql.auth.existingSecret=pg")
    assert not [d for d in docs if d["kind"] == "Secret"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "vault-synced"}} in container["envFrom"]


def test_redis_keeps_its_data_on_a_volume_with_the_append_only_file() -> None:
    docs = render()
    redis = one(docs, "StatefulSet", "ae-alert-engine-redis")
    [container] = redis["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    [claim] = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    # The workers reach it through its headless Service.
    service = one(docs, "Service", redis["spec"]["serviceName"])
    url = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]["ALERT_ENGINE_REDIS_URL"]
    assert url == f"redis://{redis['metadata']['name']}-0.{service['metadata']['name']}:6379/0"
    assert selects(service["spec"]["selector"], redis["spec"]["template"]["metadata"]["labels"])


def test_an_external_redis_needs_its_url() -> None:
    assert "redis.url is required" in refused("redis.enabled=false")
    docs = render("redis.enabled=false", "redis.url=redis://cache:6379/2")
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "StatefulSet"] == [
        "ae-alert-engine-postgresql"
    ]
    config = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    assert config["ALERT_ENGINE_REDIS_URL"] == "redis://cache:6379/2"


def test_the_history_database_keeps_its_data_on_a_volume_and_the_workers_reach_it() -> None:
    docs = render()
    database = one(docs, "StatefulSet", "ae-alert-engine-postgresql")
    [container] = database["spec"]["template"]["spec"]["containers"]
    [claim] = database["spec"]["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/postgresql/data"} in (
        container["volumeMounts"]
    )
    service = one(docs, "Service", database["spec"]["serviceName"])
    assert selects(service["spec"]["selector"], database["spec"]["template"]["metadata"]["labels"])
    url = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]["ALERT_ENGINE_DATABASE_URL"]
    host = f"{database['metadata']['name']}-0.{service['metadata']['name']}"
    assert url == f"postgresql://alert_engine@{host}:5432/alert_engine"
    # The workers' password (libpq's PGPASSWORD) is the one the server was initialised with.
    env = {item["name"]: item for item in container["env"]}
    worker = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    [password] = [item for item in worker["env"] if item["name"] == "PGPASSWORD"]
    assert password["valueFrom"] == env["POSTGRES_PASSWORD"]["valueFrom"]
    secret = one(docs, "Secret", password["valueFrom"]["secretKeyRef"]["name"])
    assert len(secret["stringData"]["password"]) == 32


def test_an_external_history_database_is_a_secret_url() -> None:
    docs = render("postgresql.enabled=false", "secrets.databaseUrl=postgresql://ae:pw@db/ae")
    assert not [d for d in docs if d["metadata"]["name"] == "ae-alert-engine-postgresql"]
    assert (
        "ALERT_ENGINE_DATABASE_URL" not in one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    )
    assert one(docs, "Secret")["stringData"] == {
        "ALERT_ENGINE_DATABASE_URL": "postgresql://ae:pw@db/ae"
    }
    worker = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in worker
    assert "postgresql.enabled=false" in refused("secrets.databaseUrl=postgresql://ae:pw@db/ae")
    assert "databaseUrl" in refused("postgresql.enabled=false", "secrets.databaseUrl=mysql://x")


def test_the_rules_config_map_is_the_rules_directory_and_loads_as_mounted(tmp_path: Path) -> None:
    rules = one(render(), "ConfigMap", "ae-alert-engine-rules")
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


def test_a_routing_file_from_the_values_is_mounted_where_the_worker_reads_it(
    tmp_path: Path,
) -> None:
    example = (ROOT / "deploy" / "routing.example.yaml").read_text()
    docs = render(values={"routing": {"file": example}}, tmp_path=tmp_path)
    config = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    path = Path(config["ALERT_ENGINE_ROUTING_FILE"])
    routing = one(docs, "ConfigMap", "ae-alert-engine-routing")["data"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "routing"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "routing"]
    assert Path(mount["mountPath"]) == path.parent
    assert volume["configMap"]["name"] == "ae-alert-engine-routing"
    (tmp_path / path.name).write_text(routing[path.name])
    assert load_routing(tmp_path / path.name).destinations  # the mounted file loads
    # Without one, no routing file is configured (every alert goes to the outbox).
    assert (
        "ALERT_ENGINE_ROUTING_FILE"
        not in one(render(), "ConfigMap", "ae-alert-engine-config")["data"]
    )


def test_the_public_and_internal_listeners_are_apart() -> None:
    docs = render(*FULL)
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    public = one(docs, "Service", "ae-alert-engine-public")
    internal = one(docs, "Service", "ae-alert-engine-internal")
    for service in (public, internal):
        assert selects(service["spec"]["selector"], pod_labels)
        assert service["spec"]["type"] == "ClusterIP"
    # The ingress routes only what Slack and customers must reach, to the public Service.
    ingress = one(docs, "Ingress")
    [rule] = ingress["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {("/slack/interactions", "Exact"), ("/survey", "Prefix")}
    backends = {p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert backends == {public["metadata"]["name"]}
    # Those are the worker's own routes for Slack's clicks and the survey links.
    sources = (ROOT / "alert_engine" / "worker" / "web.py").read_text() + (
        ROOT / "alert_engine" / "worker" / "followup_agents.py"
    ).read_text()
    assert '@app.page("/slack/interactions")' in sources
    assert '@app.page("/survey/{token}")' in sources
    # Prometheus scrapes /metrics through the internal Service only.
    monitor = one(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selects(selector, internal["metadata"]["labels"])
    assert not selects(selector, public["metadata"]["labels"])
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in internal["spec"]["ports"]}


def test_a_changed_setting_restarts_the_workers_and_a_changed_rule_does_not_need_to() -> None:
    def annotations(*sets: str) -> dict[str, str]:
        found: dict[str, str] = one(render(*sets), "Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]
        return found

    assert (
        annotations()["checksum/config"]
        != annotations("kafka.sessionTimeoutSeconds=20")["checksum/config"]
    )
    assert (
        annotations()["checksum/secret"]
        != annotations("secrets.slackBotToken=x")["checksum/secret"]
    )
    # The rules are mounted whole (no subPath): an updated ConfigMap reaches running workers.
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "rules"]
    assert "subPath" not in mount


def test_the_compose_file_is_valid_yaml_with_the_stack() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    assert set(compose["services"]) >= {"kafka", "redis", "postgres", "worker"}
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert set(worker["environment"]) <= known_env_names()
    assert "--appendonly" in compose["services"]["redis"]["command"]
    assert worker["environment"]["ALERT_ENGINE_DATABASE_URL"].startswith("postgresql://")
    assert worker["depends_on"]["postgres"] == {"condition": "service_healthy"}

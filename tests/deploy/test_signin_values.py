"""The Helm chart's sign-in values: the members Secret mounted where the worker reads it, the
trusted proxies and cookie setting in the config, and the metrics token in the Secret with the
ServiceMonitor sending it."""

from __future__ import annotations

import kubernetes_validate

from tests.deploy.test_helm import (
    FULL,
    KUBE_VERSIONS,
    SECRETS,
    known_env_names,
    one,
    refused,
    render,
)

SIGNIN = [
    "signin.membersSecret=team-members",
    "signin.trustedProxies=10.0.0.0/8\\,192.168.1.7",
    "secrets.metricsToken=scrape-me",
    "secrets.signinSessionSecret=sessions",
]


def test_the_members_secret_is_mounted_where_the_worker_reads_it() -> None:
    docs = render(*FULL, *SIGNIN)
    for doc in docs:
        if doc["kind"] != "ServiceMonitor":
            for version in KUBE_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)
    config = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    assert set(config) <= known_env_names()
    members_file = config["ALERT_ENGINE_SIGNIN_MEMBERS_FILE"]
    assert config["ALERT_ENGINE_SIGNIN_TRUSTED_PROXIES"] == "10.0.0.0/8,192.168.1.7"
    assert config["ALERT_ENGINE_SIGNIN_SECURE_COOKIES"] == "true"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "members"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "members"]
    assert mount["readOnly"] and "subPath" not in mount
    assert volume["secret"]["secretName"] == "team-members"
    [item] = volume["secret"]["items"]
    assert f"{mount['mountPath']}/{item['path']}" == members_file


def test_the_metrics_token_is_a_secret_the_service_monitor_sends() -> None:
    docs = render(*FULL, *SIGNIN)
    secret = one(docs, "Secret", SECRETS)
    assert secret["stringData"]["ALERT_ENGINE_METRICS_TOKEN"] == "scrape-me"
    assert secret["stringData"]["ALERT_ENGINE_SIGNIN_SESSION_SECRET"] == "sessions"
    assert set(secret["stringData"]) <= known_env_names()
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {
            "name": secret["metadata"]["name"],
            "key": "ALERT_ENGINE_METRICS_TOKEN",
            "optional": False,
        },
    }
    # Without a token the scrape sends none; with a Secret of your own, its token if it has one.
    [endpoint] = one(render("serviceMonitor.enabled=true"), "ServiceMonitor")["spec"]["endpoints"]
    assert "authorization" not in endpoint
    docs = render("serviceMonitor.enabled=true", "secrets.existingSecret=vault-synced")
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == {
        "name": "vault-synced",
        "key": "ALERT_ENGINE_METRICS_TOKEN",
        "optional": True,
    }


def test_without_sign_in_values_nothing_is_mounted_and_a_misspelt_one_is_refused() -> None:
    docs = render()
    config = one(docs, "ConfigMap", "ae-alert-engine-config")["data"]
    assert "ALERT_ENGINE_SIGNIN_MEMBERS_FILE" not in config
    assert "ALERT_ENGINE_SIGNIN_TRUSTED_PROXIES" not in config
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert all(v["name"] != "members" for v in pod["volumes"])
    assert "membersSecrets" in refused("signin.membersSecrets=x")

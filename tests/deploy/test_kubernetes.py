"""deploy/kubernetes: every manifest passes `kubernetes-validate --strict`; the KEDA ScaledObject
passes KEDA's CRD schema, targets the Deployment, and its query counts the right rows in a real
migrated database, run as the worker role it connects with."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.logins import apply_roles, login
from tests.tools import keda_models, kubernetes_validate, node
from worker.config import Settings, WorkerSettings
from worker.engine.metrics import Metrics, MetricsRefresher
from worker.store.outbox import WorkedAccounts

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
CORE = sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "scaledobject.yaml")
# KEDA's generated CRD schema leaves unknown keys to the API server, which drops them silently;
# a typo in one of these would go unnoticed, so the test holds the spec to the documented keys.
SCALED_OBJECT_KEYS = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}


def load(name: str) -> dict[str, Any]:
    [doc] = list(yaml.safe_load_all((MANIFESTS / name).read_text(encoding="utf-8")))
    assert isinstance(doc, dict)
    return doc


def test_every_core_manifest_passes_strict_schema_validation() -> None:
    assert {p.name for p in CORE} >= {
        "deployment.yaml",
        "migrate-job.yaml",
        "configmap.yaml",
        "secret.example.yaml",
        "service.yaml",
        "pdb.yaml",
    }
    result = subprocess.run(
        [str(kubernetes_validate()), "--strict", *map(str, CORE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed for resource ") == len(CORE), output
    assert "WARN" not in output, output
    assert "ERROR" not in output, output


def test_the_scaled_object_passes_the_keda_crd_schema() -> None:
    doc = load("scaledobject.yaml")
    env = {**os.environ, "NODE_PATH": str(keda_models().parents[1])}
    result = subprocess.run(
        [str(node()), str(Path(__file__).with_name("keda_validate.js"))],
        input=json.dumps([doc]),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(doc["spec"]) <= SCALED_OBJECT_KEYS


def test_the_keda_schema_check_catches_a_broken_scaled_object() -> None:
    broken = load("scaledobject.yaml")
    del broken["spec"]["scaleTargetRef"]
    broken["spec"]["minReplicaCount"] = "two"
    env = {**os.environ, "NODE_PATH": str(keda_models().parents[1])}
    result = subprocess.run(
        [str(node()), str(Path(__file__).with_name("keda_validate.js"))],
        input=json.dumps([broken]),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    assert "scaleTargetRef" in result.stdout
    assert "minReplicaCount must be integer" in result.stdout


def container(doc: dict[str, Any]) -> dict[str, Any]:
    [only] = doc["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def test_the_deployment_is_hardened_probed_and_stops_within_its_grace() -> None:
    deployment = load("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert deployment["spec"]["replicas"] == 3
    assert pod["terminationGracePeriodSeconds"] >= WorkerSettings().shutdown_grace + 10
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert main["resources"]["requests"]
    assert main["resources"]["limits"]["memory"]
    assert main["args"] == ["run"]


def test_the_config_map_is_a_valid_config_that_listens_beyond_loopback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = load("configmap.yaml")["data"]["invoice-sync.toml"]
    token = tmp_path / "billclap-token"
    token.write_text("t0ken-from-a-secret\n")
    path = tmp_path / "invoice-sync.toml"
    path.write_text(toml.replace("/var/run/secrets/invoice-sync/billclap-token", str(token)))
    monkeypatch.setenv("INVOICE_SYNC_DATABASE_URL", "postgresql://u@db/shop")
    from worker.config import load_settings  # noqa: PLC0415
    from worker.engine.runtimes import check_accounts  # noqa: PLC0415

    settings: Settings = load_settings(path)
    check_accounts(settings)  # the provider options too, as every command checks them
    assert settings.observe.listen == "0.0.0.0:9464"
    assert settings.accounts["shop-billclap"].resolve_token() is not None
    grace = load("deployment.yaml")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= settings.worker.shutdown_grace + 10
    # The mounts the config refers to exist in the Deployment.
    mounts = {m["mountPath"] for m in container(load("deployment.yaml"))["volumeMounts"]}
    assert {"/etc/invoice-sync", "/var/run/secrets/invoice-sync"} <= mounts


def test_the_service_and_budget_select_the_deployments_pods() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = load("service.yaml")
    budget = load("pdb.yaml")
    assert service["spec"]["selector"].items() <= labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["name"] == "metrics"
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_the_scaled_object_targets_the_deployment_and_its_env() -> None:
    scaled = load("scaledobject.yaml")
    deployment = load("deployment.yaml")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["kind"] == "ScaledObject"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    env = {e["name"] for e in container(deployment)["env"]}
    assert trigger["metadata"]["connectionFromEnv"] in env
    assert int(trigger["metadata"]["targetQueryValue"]) > 0


async def test_the_scaler_query_counts_due_and_running_rows_of_active_accounts(dsn: str) -> None:
    """The query KEDA runs, run here as the worker role it connects with. It counts only rows
    a replica can work: of accounts some running replica announced (``MetricsRefresher``)."""
    query = load("scaledobject.yaml")["spec"]["triggers"][0]["metadata"]["query"]
    await apply_roles(dsn)
    admin = await asyncpg.connect(dsn)
    try:
        for account, key, when in [
            ("a", "due-1", "-1 min"),
            ("a", "due-2", "0"),
            ("a", "later", "+1 hour"),
            ("paused", "p", "-1 min"),
            ("throttled", "t", "-1 min"),
            ("was-throttled", "w", "0"),
            ("typo", "x", "-1 min"),
            ("gone", "g", "-1 min"),
        ]:
            await admin.execute(
                "SELECT invoice_sync.enqueue($1, $2, '{}'::jsonb, now() + $3::text::interval)",
                account,
                key,
                when,
            )
        # A replica announces its accounts that have rows.
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            configured = ("a", "paused", "throttled", "was-throttled", "gone")
            await MetricsRefresher(pool, Metrics(), lambda: WorkedAccounts(configured)).refresh()
        finally:
            await pool.close()
        # The only replica configured for 'gone' stopped long enough ago.
        await admin.execute(
            "UPDATE invoice_sync.replica_account SET expires_at = now() - interval '1 second'"
            " WHERE account = 'gone'"
        )
        await admin.execute(
            "UPDATE invoice_sync.outbox SET state = 'running', lease_owner = 'x',"
            " lease_expires_at = now() + interval '5 min' WHERE idempotency_key = 'due-2'"
        )
        await admin.execute(
            "INSERT INTO invoice_sync.account_state (account, paused, throttled_until) VALUES"
            " ('paused', true, null), ('throttled', false, now() + interval '1 min'),"
            " ('was-throttled', false, now() - interval '1 min')"
        )
    finally:
        await admin.close()
    async with login(dsn, "worker") as url:
        worker = await asyncpg.connect(url)
        try:
            # due-1 (pending), due-2 (in flight), w (its throttle is over): 3; not typo's
            # nor gone's rows, which no running replica would claim.
            assert await worker.fetchval(query) == 3
        finally:
            await worker.close()

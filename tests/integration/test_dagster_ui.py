"""The Dagster webserver on a free local port against workspace.yaml: its GraphQL API lists
every asset with its group and owners and every check, and a run launched through it succeeds."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pipelines.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(port, query, variables=None):
    r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory, demo_data):
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    base = tmp_path_factory.mktemp("ui")
    home = base / "dagster_home"
    home.mkdir()
    # No daemon runs in this test: launch runs directly instead of queueing them for one.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n"
                                       "run_coordinator:\n  module: dagster._core.run_coordinator\n"
                                       "  class: DefaultRunCoordinator\n")
    data = base / "data"
    shutil.copytree(demo_data, data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_"))}
    env.update(DAGSTER_HOME=str(home), KPIWATCH_DATA_DIR=str(data), KPIWATCH_WAREHOUSE=str(base / "wh" / "kpiwatch.duckdb"))
    port = _free_port()
    exe = Path(sys.executable).parent / "dagster-webserver"
    # Output to a file: an unread pipe fills up and blocks the webserver and its run workers.
    log = (base / "webserver.log").open("w")
    proc = subprocess.Popen([str(exe), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], cwd=PROJECT_ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                data_ = _gql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name "
                                   "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
                entries = data_["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster-webserver did not start in 120 s")
        yield {"port": port, "base": base, "entries": entries}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_code_location_loads(webserver):
    [entry] = webserver["entries"]
    assert entry["name"] == "kpiwatch"
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry


def test_graphql_lists_assets_with_groups_owners_and_checks(webserver):
    data = _gql(webserver["port"], """{ assetNodes { assetKey { path } groupName description
        owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
        assetChecksOrError { ... on AssetChecks { checks { name } } } } }""")
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert {n["groupName"] for n in nodes.values()} == {"catalog", "ingest", "staging", "intermediate", "marts", "alerting", "reporting"}
    assert nodes["ingest/health_returns"]["owners"], "ingest assets are owned (from the catalog)"
    assert all(n["owners"] for n in nodes.values()), [k for k, n in nodes.items() if not n["owners"]]
    checks = {c["name"] for c in nodes["ingest/health_returns"]["assetChecksOrError"]["checks"]}
    assert {"key_unique", "kpi_id_known", "columns_present", "rejection_rate"} <= checks
    assert nodes["fct_kpi_progress"]["assetChecksOrError"]["checks"], "dbt tests are asset checks"


def test_run_launched_through_graphql_succeeds(webserver):
    port = webserver["port"]
    launched = _gql(port, """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                    {"p": {"selector": {"repositoryLocationName": "kpiwatch", "repositoryName": "__repository__",
                                        "jobName": "kpiwatch_all"}, "runConfigData": {}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        status = _gql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    if status != "SUCCESS":  # say what the run was doing
        logs = _gql(port, """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
            events { __typename ... on MessageEvent { message stepKey } } } } }""", {"id": run_id})
        tail = [f"{e.get('stepKey')}: {e.get('message')}" for e in logs["logsForRun"]["events"]][-25:]
        pytest.fail(f"run {run_id} ended {status}:\n" + "\n".join(tail))
    assert (webserver["base"] / "wh" / "kpiwatch.duckdb").exists()
    # what an operator reads in the UI: materialization metadata and check results
    def metadata(*path):
        node = _gql(port, """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset {
            assetMaterializations(limit: 1) { runId metadataEntries { label
              ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text }
              ... on PathMetadataEntry { path } } } } } }""", {"k": {"path": list(path)}})["assetOrError"]
        [mat] = node["assetMaterializations"]
        assert mat["runId"] == run_id
        return {e["label"]: e.get("intValue", e.get("text", e.get("path"))) for e in mat["metadataEntries"]}

    health = metadata("ingest", "health_returns")
    assert (health["rows_in"], health["rows_landed"], health["rows_quarantined"]) == (
        health["rows_landed"] + 5, health["rows_in"] - 5, 5)  # the demo's five bad rows
    scorecard = metadata("reports", "scorecard")
    assert scorecard["published_statuses"] == "amber 1, green 9, red 3" and scorecard["path"].endswith("scorecard.html")
    publish = metadata("publish", "kpi_status")
    assert publish["figures_published"] == 13 and publish["blocked_departments"] == "none"
    checks = _gql(port, """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
        assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization {
          status evaluation { metadataEntries { label ... on TextMetadataEntry { text } } } } } } } } } }""",
                  {"k": {"path": ["ingest", "health_returns"]}})["assetNodeOrError"]["assetChecksOrError"]["checks"]
    by_name = {c["name"]: c["executionForLatestMaterialization"] for c in checks}
    unknown = by_name["kpi_id_known"]
    assert unknown["status"] == "FAILED"
    entries = {e["label"]: e.get("text") for e in unknown["evaluation"]["metadataEntries"]}
    assert "expected" in entries and "observed" in entries and entries["observed"]

"""A model's whole life on PostgreSQL: a real `mlflow server` whose backend store is PostgreSQL (proxied artifacts, as in
the compose file), and the prediction service logging to PostgreSQL, through the console script a user types.

pipeline -> register -> promote -> serve -> predict -> outcomes -> drift --from-store -> a second version -> rollback.
Each server has a database of its own on the session's shared PostgreSQL (conftest's `postgres`); every process is
started here and stopped by its PID."""
import json, subprocess, sys, time
from pathlib import Path
import pytest, requests
from conftest import BASE_ENV, SYNTHETIC_GATES, free_port, run_cli, stop, wait_for
from serve_bench import service_command
from test_registry_server import client
from loan_default.schema import FEATURES

NAME = "pg-life"
KEY, ADMIN = "pg-life-api-key-0123456789", "pg-life-admin-key-9876543210"
H = {"X-API-Key": KEY}

@pytest.fixture(scope="module")
def mlflow_on_postgres(postgres, tmp_path_factory):
    "A real `mlflow server` on loopback, its backend store a PostgreSQL database of its own: one worker, job execution off, proxied artifacts."
    backend = postgres.create_database("pg_life_mlflow")
    d = tmp_path_factory.mktemp("mlflow-pg")
    port = free_port()
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", backend, "--artifacts-destination", str(d / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**BASE_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{uri}/health", timeout=120, proc=proc)      # a fresh database: MLflow creates its tables first
        yield uri
    finally:
        stop(proc); log.close()

def _start_service(folder: Path, env: dict) -> tuple[subprocess.Popen, str]:
    "`loan-default serve` on a free loopback port, as a user starts it; returns the process and its URL once /health answers."
    port = free_port()
    proc = subprocess.Popen(service_command("127.0.0.1", port), stdout=open(folder / "service.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=folder, env={**BASE_ENV, **env})
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health", timeout=90, proc=proc)
    return proc, url

def _served_version(url: str, want: str, timeout: float = 60) -> str | None:
    "The version /model names once it is `want` (the service follows the alias by itself), or the last one seen after `timeout`."
    seen, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{url}/model", headers=H, timeout=10)
        seen = r.json().get("version") if r.status_code == 200 else None
        if seen == want: break
        time.sleep(0.3)
    return seen

def _pg_rows(postgres, database: str, sql: str) -> list[tuple]:
    "Rows of `sql` read straight from PostgreSQL with psycopg (not through the product's code)."
    import psycopg
    with psycopg.connect(postgres.url(database, driver="postgresql")) as conn: return conn.execute(sql).fetchall()

def _log_tail(path: Path, n: int = 3000) -> str: return path.read_text(errors="replace")[-n:] if path.exists() else ""

def test_model_life_on_postgres(postgres, mlflow_on_postgres, synthetic_csv, tmp_path):
    from loan_default.synth import synthesize
    uri, c = mlflow_on_postgres, client(mlflow_on_postgres)
    env = {"MLFLOW_TRACKING_URI": uri, "LD_MODEL_NAME": NAME, **SYNTHETIC_GATES}

    # pipeline -> @staging on the PostgreSQL-backed registry, artifacts through the server
    r = run_cli("pipeline", "--data", synthetic_csv, "--time-budget", 3, "--out", tmp_path / "run1", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"registered {NAME} version 1 as @staging" in r.stdout, r.stdout[-2000:]
    run1 = json.loads((tmp_path / "run1" / "train.json").read_text())["run_id"]
    assert c.get_run(run1).info.artifact_uri.startswith("mlflow-artifacts:")
    r = run_cli("promote", env=env)
    assert r.returncode == 0 and "version 1 (was unset)" in r.stdout, r.stderr
    # the registry's rows are in PostgreSQL, not in a file beside the server
    assert _pg_rows(postgres, "pg_life_mlflow", f"select version from registered_model_aliases where name = '{NAME}' and alias = 'production'") == [(1,)]

    store = postgres.create_database("pg_life_store")
    (svc := tmp_path / "service").mkdir()
    proc, url = _start_service(svc, {**env, "LD_PREDICTION_STORE": store, "LD_SERVE_POLL_S": "1", "LD_API_KEYS": KEY, "LD_ADMIN_KEY": ADMIN})
    try:
        wait_for(f"{url}/ready", timeout=90, proc=proc)
        assert _served_version(url, "1") == "1", _log_tail(svc / "service.log")

        # predict: every answer is a row in PostgreSQL
        apps = synthesize(1000, seed=21, dirty=False).reset_index(drop=True)
        apps["application_id"] = [f"pg-{i:04d}" for i in range(len(apps))]
        body = {"data": json.loads(apps[FEATURES + ["application_id"]].to_json(orient="records")), "reasons": False}
        r = requests.post(f"{url}/predict", headers=H, json=body, timeout=120)
        assert r.status_code == 200, f"POST /predict with the store on PostgreSQL: {r.status_code} {r.text[:500]}\n{_log_tail(svc / 'service.log')}"
        answers = {p["application_id"]: p for p in r.json()["predictions"]}
        stored = _pg_rows(postgres, "pg_life_store", "select application_id, model_version, probability_of_default, decision from predictions")
        assert len(stored) == 1000 and {a for a, *_ in stored} == set(apps.application_id), len(stored)
        for a, version, p, decision in stored:
            assert version == "1" and p == pytest.approx(answers[a]["probability_of_default"], abs=1e-12) and decision == answers[a]["decision"]

        # outcomes for 600 of them (and one id never scored): recorded in PostgreSQL
        known = apps.head(600)
        outcomes = [{"application_id": a, "loan_status": int(y)} for a, y in zip(known.application_id, known.loan_status)]
        r = requests.post(f"{url}/outcomes", headers=H, json={"outcomes": outcomes + [{"application_id": "never-scored", "loan_status": 0}]}, timeout=60)
        assert r.status_code == 200, f"POST /outcomes with the store on PostgreSQL: {r.status_code} {r.text[:500]}"
        assert r.json() == {"recorded": 600, "already_recorded": 0, "unmatched": ["never-scored"]}
        assert dict(_pg_rows(postgres, "pg_life_store", "select application_id, loan_status from outcomes")) == {o["application_id"]: o["loan_status"] for o in outcomes}

        # drift reads the same store: every row, the labelled ones judged (500 at least), against the served version's reference
        r = run_cli("drift", "--from-store", store, "--out", tmp_path / "drift", cwd=tmp_path, env=env)
        assert r.returncode == 0, f"drift --from-store on PostgreSQL failed:\n{r.stderr[-3000:]}"
        rep = json.loads((tmp_path / "drift" / "report.json").read_text())
        assert rep["rows"] == 1000 and rep["model"]["version"] == "1", (rep["rows"], rep["model"])
        assert rep["performance"]["with_outcomes"] and rep["performance"]["labelled_rows"] == 600, rep["performance"]
        drift_runs = c.search_runs([c.get_experiment_by_name("loan-default-drift").experiment_id])
        assert [(x.data.tags["rows"], x.data.tags["model.version"]) for x in drift_runs] == [("1000", "1")]
        assert "realised.roc_auc" in drift_runs[0].data.metrics and {a.path for a in c.list_artifacts(drift_runs[0].info.run_id)} >= {"report.json"}

        # a second version, promoted: the service follows @production; rolled back: it follows it back to v1
        r = run_cli("train", "--data", synthetic_csv, "--time-budget", 3, "--seed", 7, "--out", tmp_path / "run2", cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        r = run_cli("register", env={**env, "LD_GATE_TOLERANCE": "1.0"})                  # the latest run, whatever its figures
        assert r.returncode == 0 and "version 2 (@staging)" in r.stdout, r.stderr
        assert run_cli("promote", env=env).returncode == 0
        assert _served_version(url, "2") == "2", _log_tail(svc / "service.log")
        r = requests.post(f"{url}/predict", headers=H, json={"data": [body["data"][0] | {"application_id": "pg-v2"}]}, timeout=60)
        assert r.status_code == 200 and r.json()["model"]["version"] == "2", r.text[:500]
        r = run_cli("rollback", env=env)
        assert r.returncode == 0 and "back to version 1" in r.stdout, r.stderr
        assert c.get_model_version_by_alias(NAME, "production").version == "1"
        assert _served_version(url, "1") == "1", _log_tail(svc / "service.log")
        assert _pg_rows(postgres, "pg_life_store", "select model_version from predictions where application_id = 'pg-v2'") == [("2",)]
    finally:
        stop(proc)

"""Access control on the team's tracking server, for real: a `mlflow server --app-name basic-auth` process on loopback
(started through the compose file's entrypoint, docker/mlflow_entrypoint.py; SQLite for its stores), the users
created by docker/mlflow_users.py, the project's commands run with each user's credentials.

- a request without a user, or with a wrong password, is refused (401);
- the pipeline's user trains, registers and promotes (`loan-default train`, `register`, `promote`);
- the prediction service's user resolves the alias and loads the version, and is refused (403) when it registers a
  version or moves an alias;
- `loan-default serve` with that user's credentials serves the registered model.
Every process is started here and stopped by its PID."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, requests
from conftest import ROOT, BASE_ENV, SYNTHETIC_GATES, free_port, one_line_error, run_cli, stop, wait_for

ADMIN = ("admin", "admin-password-for-tests")
WRITER = ("pipeline-user", "pipeline-password-1")
READER = ("api-user", "api-password-12345")
MODEL, EXPERIMENT = "auth-model", "auth-experiment"
SEARCH = "/api/2.0/mlflow/registered-models/search"

def creds(user) -> dict:
    "The environment MLflow's clients read a user's credentials from."
    return {"MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "The basic-auth server, as the compose file's entrypoint starts it (the admin's password only in the environment)."
    d = tmp_path_factory.mktemp("auth-server")
    port = free_port()
    env = {**BASE_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key", "MLFLOW_AUTH_CONFIG_PATH": str(d / "basic_auth.ini"),
           "AUTH_DATABASE_URI": f"sqlite:///{d}/auth.db"}
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"): env.pop(k, None)
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "docker" / "mlflow_entrypoint.py"), str(Path(sys.executable).parent / "mlflow"),
                             "server", "--app-name=basic-auth", "--host=127.0.0.1", f"--port={port}", "--workers=1",
                             f"--backend-store-uri=sqlite:///{d}/mlflow.db", f"--artifacts-destination={d / 'artifacts'}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=d)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", timeout=120, proc=proc)
        yield dict(url=url, dir=d, proc=proc)
    finally:
        stop(proc); log.close()

def create_users(url: str, admin=ADMIN) -> subprocess.CompletedProcess:
    "docker/mlflow_users.py, as the compose file's one-shot service runs it, signed in as `admin`."
    env = {**BASE_ENV, "MLFLOW_TRACKING_URI": url, **creds(admin), "PIPELINE_MLFLOW_USERNAME": WRITER[0],
           "PIPELINE_MLFLOW_PASSWORD": WRITER[1], "API_MLFLOW_USERNAME": READER[0], "API_MLFLOW_PASSWORD": READER[1]}
    return subprocess.run([sys.executable, str(ROOT / "docker" / "mlflow_users.py")], capture_output=True, text=True, env=env, timeout=120)

@pytest.fixture(scope="module")
def users(server):
    r = create_users(server["url"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{WRITER[0]}: created, may write" in r.stdout and f"{READER[0]}: created, may read" in r.stdout
    return server

def test_no_user_no_registry(server):
    url = server["url"]
    assert requests.get(url + SEARCH, timeout=10).status_code == 401
    assert requests.get(url + SEARCH, auth=(ADMIN[0], "not-the-password"), timeout=10).status_code == 401
    assert requests.get(url + SEARCH, auth=ADMIN, timeout=10).status_code == 200
    assert requests.get(url + "/health", timeout=10).status_code == 200          # the compose healthcheck needs no user
    # the admin's password is in no file the entrypoint wrote
    assert ADMIN[1] not in (server["dir"] / "basic_auth.ini").read_text()

def test_users_script_is_safe_to_rerun(users):
    r = create_users(users["url"])
    assert r.returncode == 0 and f"{WRITER[0]}: updated" in r.stdout, r.stderr[-2000:]
    assert requests.get(users["url"] + SEARCH, auth=WRITER, timeout=10).status_code == 200
    bad = create_users(users["url"], admin=(ADMIN[0], "wrong-password-123"))
    assert bad.returncode != 0 and "401" in bad.stderr

@pytest.fixture(scope="module")
def registered(users, synthetic_csv, tmp_path_factory):
    "The pipeline's user trains and registers through the project's commands: version 1, @staging."
    d = tmp_path_factory.mktemp("writer")
    r = run_cli("train", "--data", synthetic_csv, "--time-budget", 3, "--out", d / "run", cwd=d, env=cli_env(users["url"], WRITER))
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_cli("register", env=cli_env(users["url"], WRITER), cwd=d)
    assert r.returncode == 0 and f"registered {MODEL}: version 1 (@staging)" in r.stdout, r.stdout + r.stderr[-2000:]
    return dict(url=users["url"], run_id=json.loads((d / "run" / "train.json").read_text())["run_id"])

def cli_env(url, user) -> dict:
    return {"MLFLOW_TRACKING_URI": url, **creds(user), "LD_MODEL_NAME": MODEL, "LD_EXPERIMENT": EXPERIMENT, **SYNTHETIC_GATES}

def alias(url, name) -> requests.Response:
    return requests.get(url + "/api/2.0/mlflow/registered-models/alias", params={"name": MODEL, "alias": name}, auth=ADMIN, timeout=10)

def test_reader_cannot_register_or_promote(registered, tmp_path):
    url, run_id = registered["url"], registered["run_id"]
    experiment_id = requests.get(url + "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT},
                                 auth=READER, timeout=10).json()["experiment"]["experiment_id"]
    # every change is refused with 403 (signed in, not allowed)
    posts = {"/api/2.0/mlflow/model-versions/create": {"name": MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id},
             "/api/2.0/mlflow/registered-models/alias": {"name": MODEL, "alias": "production", "version": "1"},
             "/api/2.0/mlflow/runs/create": {"experiment_id": experiment_id}}
    for path, body in posts.items():
        assert requests.post(url + path, json=body, auth=READER, timeout=10).status_code == 403, path
    assert requests.delete(url + "/api/2.0/mlflow/registered-models/alias", json={"name": MODEL, "alias": "staging"},
                           auth=READER, timeout=10).status_code == 403
    # so is the project's promote, and nothing moved
    r = run_cli("promote", env=cli_env(url, READER), cwd=tmp_path)
    one_line_error(r, "403", "Permission denied")
    assert alias(url, "staging").json()["model_version"]["version"] == "1" and alias(url, "production").status_code != 200

@pytest.fixture(scope="module")
def promoted(registered, tmp_path_factory):
    r = run_cli("promote", env=cli_env(registered["url"], WRITER), cwd=tmp_path_factory.mktemp("promote"))
    assert r.returncode == 0, r.stderr[-2000:]
    return registered

def test_writer_promotes(promoted):
    assert alias(promoted["url"], "production").json()["model_version"]["version"] == "1"

def test_reader_resolves_and_loads(promoted, monkeypatch, tmp_path):
    "What `loan-default serve` needs: the alias resolved, the version's model downloaded through the proxy."
    url = promoted["url"]
    for k, v in creds(READER).items(): monkeypatch.setenv(k, v)
    import mlflow, mlflow.pyfunc
    mlflow.set_tracking_uri(url); mlflow.set_registry_uri(url)          # conftest resets both after this file
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "production")
    assert version.version == "1" and version.run_id == promoted["run_id"]
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@production", dst_path=str(tmp_path))
    from loan_default.synth import synthesize
    from loan_default.schema import FEATURES
    out = model.predict(synthesize(5, seed=1, dirty=False)[FEATURES])
    assert len(out) == 5 and out["probability_of_default"].between(0, 1).all()

def test_service_serves_with_reader_credentials(promoted, tmp_path):
    "`loan-default serve` as the compose file's API runs it: the reader's credentials, its own prediction store."
    port = free_port()
    env = {**BASE_ENV, "MLFLOW_TRACKING_URI": promoted["url"], **creds(READER), "LD_MODEL_NAME": MODEL,
           "LD_SERVE_ALIAS": "production", "LD_API_KEYS": "auth-test-key-0123456789", "LD_PREDICTION_STORE": f"sqlite:///{tmp_path}/predictions.db"}
    log = open(tmp_path / "service.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "loan-default"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/ready", timeout=120, proc=proc)
        assert requests.get(f"{url}/ready", timeout=10).json()["model"]["version"] == "1"
        from loan_default.synth import synthesize
        from loan_default.schema import FEATURES
        rows = json.loads(synthesize(3, seed=2, dirty=False)[FEATURES].to_json(orient="records"))
        r = requests.post(f"{url}/predict", json={"data": rows}, headers={"X-API-Key": "auth-test-key-0123456789"}, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"]["name"] == MODEL and body["model"]["version"] == "1" and len(body["predictions"]) == 3
        assert all(0 <= p["probability_of_default"] <= 1 for p in body["predictions"])
    finally:
        stop(proc); log.close()

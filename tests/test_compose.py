"""docker-compose.yaml without a Docker engine: its wiring, its environment variables (each one something reads),
and its MLflow command, started directly with the pinned MLflow (SQLite and a temporary folder standing in for
PostgreSQL and the volume) to show its flags work: /health, the healthcheck, proxied artifacts, the accepted Host
headers, one worker and no job runner."""
import os, re, shlex, subprocess, sys
from importlib.metadata import version
from pathlib import Path
import pytest, requests, yaml
from conftest import free_port, stop, wait_for

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"

def interpolate(value: str, env: dict | None = None) -> str:
    "Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}` substitution (`$$` is a literal `$`)."
    env = os.environ if env is None else env
    def sub(m):
        name, op, default = m[1], m[2], m[3] or ""
        if op == ":-": return env.get(name) or default
        if op == "-": return env.get(name, default)
        return env.get(name, "")
    return re.sub(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}", lambda m: "$" if m[0] == "$$" else sub(m), value)

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())

def _env(service: dict) -> dict:
    "A service's environment (mapping or list form), interpolated with an empty host environment."
    env = service.get("environment") or {}
    if isinstance(env, list): env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: interpolate(str(v), {}) for k, v in env.items()}

def _argv(service: dict) -> list[str]:
    cmd = service["command"]
    return [interpolate(a, {}) for a in (shlex.split(cmd) if isinstance(cmd, str) else cmd)]

def _flag(argv, name) -> str:
    "The value of `--name=value` or `--name value` in argv."
    for i, a in enumerate(argv):
        if a.startswith(f"{name}="): return a.split("=", 1)[1]
        if a == name: return argv[i + 1]
    raise AssertionError(f"{name} not in {argv}")

def test_interpolate():
    assert interpolate("a${X:-d}b", {}) == "adb"
    assert interpolate("${X:-d}", {"X": "v"}) == "v" and interpolate("${X:-d}", {"X": ""}) == "d" and interpolate("${X-d}", {"X": ""}) == ""
    assert interpolate("$${X}", {}) == "${X}"

# -- wiring ------------------------------------------------------------------------------------------------------------

def test_services_and_wiring(compose):
    s = compose["services"]
    assert {"postgres", "mlflow", "api", "lab"} <= set(s)
    mlflow, api, lab, pg = s["mlflow"], s["api"], s["lab"], s["postgres"]
    argv = _argv(mlflow)
    assert argv[:2] == ["mlflow", "server"]
    assert _flag(argv, "--workers") == "1"
    assert _flag(argv, "--backend-store-uri").startswith("postgresql+psycopg2://mlflow:mlflow@postgres:5432/mlflow")
    assert _flag(argv, "--artifacts-destination") == "/mlflow/artifacts"
    assert "--no-serve-artifacts" not in argv                         # proxied artifacts (the default) stay on
    assert any(v.endswith(":/mlflow/artifacts") for v in mlflow["volumes"]), "artifacts must be on a volume"
    assert _env(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "healthcheck" in mlflow and "healthcheck" in pg
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _env(pg)["POSTGRES_DB"] == "mlflow" and pg["image"].startswith("postgres:")
    # the API: built from the Dockerfile, pointed at the server, started once the server is healthy
    assert api["build"] in (".", {"context": "."}) and (ROOT / "Dockerfile").exists()
    assert _env(api)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    # JupyterLab: optional (a profile), on the same server
    assert lab["profiles"] == ["lab"] and _env(lab)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "jupyter lab" in " ".join(_argv(lab))
    # the hosts the server accepts include the name the others call it by
    from mlflow.server.security_utils import is_allowed_host_header
    hosts = _flag(argv, "--allowed-hosts").split(",")
    assert all(is_allowed_host_header(hosts, h) for h in ("mlflow:5000", "localhost:5000", "127.0.0.1:5000")), hosts
    assert not is_allowed_host_header(hosts, "evil.example:5000")

def test_mlflow_image_pins_the_locked_mlflow(compose):
    inline = compose["services"]["mlflow"]["build"]["dockerfile_inline"]
    pinned = re.search(r"mlflow==([\w.]+)", inline)[1]
    locked = re.search(r"^mlflow==([\w.]+)$", (ROOT / "requirements.lock").read_text(), re.M)[1]
    assert pinned == locked == version("mlflow")
    assert compose["services"]["mlflow"]["image"].endswith(f":{pinned}")

# -- every variable set is one something reads -------------------------------------------------------------------------

POSTGRES_IMAGE_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS", "POSTGRES_INITDB_WALDIR",
                            "POSTGRES_HOST_AUTH_METHOD", "PGDATA"}   # the official image's documented variables

def _ld_variables() -> set[str]:
    from loan_default.config import Settings
    return {f"LD_{n.upper()}" for n in Settings.model_fields}

def _mlflow_reads(name: str) -> bool:
    "True when MLflow defines `name` among its environment variables (mlflow.environment_variables)."
    import mlflow.environment_variables as ev
    return any(getattr(v, "name", None) == name for v in vars(ev).values())

def test_every_environment_variable_is_read(compose):
    ld = _ld_variables()
    assert {"LD_MODEL_NAME", "LD_SERVE_ALIAS", "LD_PREDICTION_STORE", "LD_MIN_F1"} <= ld
    unknown = []
    for name, service in compose["services"].items():
        for var in _env(service):
            if var.startswith("LD_"): ok = var in ld
            elif var.startswith("MLFLOW_"): ok = _mlflow_reads(var)
            elif var.startswith(("POSTGRES_", "PG")): ok = var in POSTGRES_IMAGE_VARIABLES and service.get("image", "").startswith("postgres")
            else: ok = False
            if not ok: unknown.append(f"{name}: {var}")
    assert not unknown, f"set in docker-compose.yaml but read by nothing: {unknown}"

def test_the_check_catches_a_misspelling():
    assert "LD_SERVE_ALIAS" in _ld_variables() and "LD_SERVE_ALIASES" not in _ld_variables()
    assert _mlflow_reads("MLFLOW_TRACKING_URI") and not _mlflow_reads("MLFLOW_TRACKING_URL")

# -- the MLflow command, started directly ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose_mlflow(compose, tmp_path_factory):
    "The compose file's mlflow command with local stand-ins: SQLite for PostgreSQL, a folder for the volume, loopback and a free port."
    d = tmp_path_factory.mktemp("compose-mlflow")
    service, port = compose["services"]["mlflow"], free_port()
    local = {"--backend-store-uri": f"sqlite:///{d}/mlflow.db", "--artifacts-destination": str(d / "artifacts"),
             "--host": "127.0.0.1", "--port": str(port)}
    argv = [str(Path(sys.executable).parent / "mlflow")]
    for a in _argv(service)[1:]:
        name = a.split("=", 1)[0]
        argv.append(f"{name}={local[name]}" if name in local and "=" in a else a)
    assert all(f"{k}={v}" in argv for k, v in local.items()), argv
    log = open(d / "server.log", "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=d,
                            env={**os.environ, **_env(service)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", timeout=90, proc=proc)
        yield dict(url=url, port=port, proc=proc, dir=d, service=service)
    finally:
        stop(proc); log.close()

def test_mlflow_command_answers_health(compose_mlflow):
    r = requests.get(compose_mlflow["url"] + "/health", timeout=5)
    assert r.status_code == 200 and r.text.strip() == "OK"

def test_healthcheck_command_passes(compose_mlflow):
    test = compose_mlflow["service"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    argv = [a.replace("127.0.0.1:5000", f"127.0.0.1:{compose_mlflow['port']}") for a in test[1:]]
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    assert subprocess.run(argv, timeout=30).returncode == 0

def test_the_names_the_others_use_are_accepted(compose_mlflow):
    "The API and JupyterLab send `Host: mlflow:5000`; a host outside --allowed-hosts is refused (DNS-rebinding protection)."
    url = compose_mlflow["url"] + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(url, headers={"Host": "mlflow:5000"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Host": "evil.example"}, timeout=10).status_code in (400, 403)

def test_artifacts_are_proxied_to_the_destination(compose_mlflow):
    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=compose_mlflow["url"])
    exp = client.create_experiment("compose-check")
    run = client.create_run(exp)
    assert client.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
    f = compose_mlflow["dir"] / "note.txt"; f.write_text("proxied")
    client.log_artifact(run.info.run_id, str(f))
    stored = list((compose_mlflow["dir"] / "artifacts").rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "proxied"

def test_one_worker_no_job_runner(compose_mlflow):
    "--workers=1 and MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: the server is at most two processes (the CLI and one uvicorn)."
    import psutil
    procs = [psutil.Process(compose_mlflow["proc"].pid)] + psutil.Process(compose_mlflow["proc"].pid).children(recursive=True)
    cmdlines = [" ".join(p.cmdline()) for p in procs]
    assert len(procs) <= 2, cmdlines
    assert not any("huey" in c or "job" in c.split("/")[-1] for c in cmdlines), cmdlines

"""docker-compose.yaml without a Docker engine: its wiring, its secrets (required, never a default), its environment
variables (each one something reads), and its commands started directly with the pinned MLflow: the PostgreSQL init
script on a real PostgreSQL of the test's own, the mlflow service (basic-auth, through docker/mlflow_entrypoint.py) on
the databases that script made, and the one-shot mlflow-users service against it. Shown: /health, the healthcheck,
proxied artifacts, the accepted Host headers, one worker and no job runner, and each service's user doing what it
may and nothing more."""
import os, re, shlex, subprocess, sys
from importlib.metadata import version
from pathlib import Path
import pytest, requests, yaml
from conftest import ROOT, free_port, stop, wait_for

COMPOSE = ROOT / "docker-compose.yaml"

class MissingVariable(ValueError): "A `${VAR:?message}` compose refuses to start without."

def interpolate(value: str, env: dict | None = None) -> str:
    "Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `${VAR?error}` (`$$` is a literal `$`)."
    env = os.environ if env is None else env
    def sub(m):
        name, op, arg = m[1], m[2], m[3] or ""
        if op == ":-": return env.get(name) or arg
        if op == "-": return env.get(name, arg)
        if op == ":?" and not env.get(name) or op == "?" and name not in env: raise MissingVariable(f"{name}: {arg}")
        return env.get(name, "")
    return re.sub(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}", lambda m: "$" if m[0] == "$$" else sub(m), value)

# The secrets a team puts in .env (docker/team.env.example): test values here
SECRETS = {"POSTGRES_PASSWORD": "pg-secret-for-tests", "PREDICTIONS_DB_PASSWORD": "predictions-secret-for-tests",
           "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-secret-for-tests", "MLFLOW_FLASK_SERVER_SECRET_KEY": "form-key-for-tests",
           "PIPELINE_MLFLOW_PASSWORD": "pipeline-secret-for-tests", "API_MLFLOW_PASSWORD": "api-secret-for-tests"}

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())

def _env(service: dict, host: dict = SECRETS) -> dict:
    "A service's environment (mapping or list form), interpolated with `host` as the host's environment (.env)."
    env = service.get("environment") or {}
    if isinstance(env, list): env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: interpolate(str(v), host) for k, v in env.items()}

def _argv(service: dict, key: str = "command", host: dict = SECRETS) -> list[str]:
    cmd = service[key]
    return [interpolate(a, host) for a in (shlex.split(cmd) if isinstance(cmd, str) else cmd)]

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
    assert interpolate("${X:?set X}", {"X": "v"}) == "v" and interpolate("${X?set X}", {"X": ""}) == ""
    for env in ({}, {"X": ""}):
        with pytest.raises(MissingVariable, match="X: set X"): interpolate("a${X:?set X}", env)

# -- secrets -----------------------------------------------------------------------------------------------------------

def test_secrets_are_required_never_defaulted(compose):
    "Every reference to a secret is `${NAME:?...}`: compose refuses to start without it, and no file holds a value."
    text = COMPOSE.read_text()
    refs = re.findall(r"\$\{(\w+)(:?[-?]?)", text)
    secret_refs = [(n, op) for n, op in refs if n in SECRETS]
    assert {n for n, _ in secret_refs} == set(SECRETS), "every secret is used"
    assert all(op == ":?" for _, op in secret_refs), secret_refs
    # every password or key a service is given is one of them
    for name, service in compose["services"].items():
        for var, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET", var):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)) and value[2:].split(":")[0] in SECRETS, (name, var, value)
    # without .env, the services that need a secret do not start
    for name in ("postgres", "mlflow", "mlflow-users", "api", "lab"):
        with pytest.raises(MissingVariable): _env(compose["services"][name], {})
    example = (ROOT / "docker" / "team.env.example").read_text()
    assert all(re.search(rf"^{n}=$", example, re.M) for n in SECRETS), "team.env.example lists every secret, empty"

# -- wiring ------------------------------------------------------------------------------------------------------------

def test_services_and_wiring(compose):
    s = compose["services"]
    assert {"postgres", "mlflow", "mlflow-users", "api", "lab"} <= set(s)
    mlflow, users, api, lab, pg = s["mlflow"], s["mlflow-users"], s["api"], s["lab"], s["postgres"]
    argv = _argv(mlflow)
    assert argv[:2] == ["mlflow", "server"] and _flag(argv, "--app-name") == "basic-auth"
    assert _flag(argv, "--workers") == "1"
    assert _flag(argv, "--backend-store-uri") == f"postgresql+psycopg://mlflow:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/mlflow"
    assert _flag(argv, "--artifacts-destination") == "/mlflow/artifacts"
    assert "--no-serve-artifacts" not in argv                         # proxied artifacts (the default) stay on
    assert any(v.endswith(":/mlflow/artifacts") for v in mlflow["volumes"]), "artifacts must be on a volume"
    env = _env(mlflow)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["AUTH_DATABASE_URI"] == f"postgresql+psycopg://mlflow:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/mlflow_auth"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == SECRETS["MLFLOW_AUTH_ADMIN_PASSWORD"] and env["MLFLOW_AUTH_CONFIG_PATH"]
    assert mlflow["build"] == {"context": ".", "dockerfile": "docker/mlflow.Dockerfile"} and (ROOT / mlflow["build"]["dockerfile"]).exists()
    assert "healthcheck" in mlflow and "healthcheck" in pg
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _env(pg)["POSTGRES_DB"] == "mlflow" and _env(pg)["POSTGRES_USER"] == "mlflow" and pg["image"].startswith("postgres:")
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in pg["volumes"]
    # the users: made by the admin once the server is healthy; the API and JupyterLab wait for them
    assert users["image"] == mlflow["image"] and users["build"] == mlflow["build"]
    assert users["entrypoint"] == ["python", "/opt/mlflow/mlflow_users.py"] and users["depends_on"]["mlflow"]["condition"] == "service_healthy"
    uenv = _env(users)
    assert (uenv["MLFLOW_TRACKING_USERNAME"], uenv["MLFLOW_TRACKING_PASSWORD"]) == (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    # the API: built from the Dockerfile, the registry's read-only user, its prediction log in its own database
    assert api["build"] in (".", {"context": "."}) and (ROOT / "Dockerfile").exists()
    aenv = _env(api)
    assert aenv["MLFLOW_TRACKING_URI"] == uenv["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert (aenv["MLFLOW_TRACKING_USERNAME"], aenv["MLFLOW_TRACKING_PASSWORD"]) == (uenv["API_MLFLOW_USERNAME"], uenv["API_MLFLOW_PASSWORD"])
    assert aenv["LD_PREDICTION_STORE"] == f"postgresql+psycopg://predictions:{SECRETS['PREDICTIONS_DB_PASSWORD']}@postgres:5432/predictions"
    assert api["depends_on"]["mlflow-users"]["condition"] == "service_completed_successfully"
    # JupyterLab: optional (a profile), on the same server, as the pipeline's user
    lenv = _env(lab)
    assert lab["profiles"] == ["lab"] and lenv["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert (lenv["MLFLOW_TRACKING_USERNAME"], lenv["MLFLOW_TRACKING_PASSWORD"]) == (uenv["PIPELINE_MLFLOW_USERNAME"], uenv["PIPELINE_MLFLOW_PASSWORD"])
    assert uenv["PIPELINE_MLFLOW_USERNAME"] != uenv["API_MLFLOW_USERNAME"]
    assert "jupyter lab" in " ".join(_argv(lab))
    # the hosts the server accepts include the name the others call it by
    from mlflow.server.security_utils import is_allowed_host_header
    hosts = _flag(argv, "--allowed-hosts").split(",")
    assert all(is_allowed_host_header(hosts, h) for h in ("mlflow:5000", "localhost:5000", "127.0.0.1:5000")), hosts
    assert not is_allowed_host_header(hosts, "evil.example:5000")

MLFLOW_DOCKERFILE = ROOT / "docker" / "mlflow.Dockerfile"

def test_mlflow_image_pins_the_locked_versions(compose):
    "MLflow, Flask-WTF (its auth extra) and psycopg in the server's image are the versions requirements.lock pins."
    image, lock = MLFLOW_DOCKERFILE.read_text(), (ROOT / "requirements.lock").read_text()
    for name in ("mlflow", "Flask-WTF", "psycopg"):
        pinned = re.search(rf"{name}(?:\[\w+\])?==([\w.]+)", image)[1]
        locked = re.search(rf"^{name}==([\w.]+)$", lock, re.M)[1]
        assert pinned == locked == version(name), name
    assert compose["services"]["mlflow"]["image"].endswith(f":{version('mlflow')}")
    # the image's entrypoint is the script the tests start, copied where the compose file runs it from
    assert 'ENTRYPOINT ["python", "/opt/mlflow/mlflow_entrypoint.py"]' in image
    assert "COPY docker/mlflow_entrypoint.py docker/mlflow_users.py /opt/mlflow/" in image

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

# the scripts of ours each service runs (docker/): a variable set for a service may be one its script reads
SCRIPTS = {"postgres": sorted((ROOT / "docker" / "postgres-init").glob("*.sh")), "mlflow": [ROOT / "docker" / "mlflow_entrypoint.py"],
           "mlflow-users": [ROOT / "docker" / "mlflow_users.py"]}

def _script_reads(service: str, name: str) -> bool:
    "True when a script `service` runs reads `name` (as $NAME, ${NAME...} or the string 'NAME')."
    return any(re.search(rf"\$\{{?{name}\b|[\'\"]{name}[\'\"]", f.read_text()) for f in SCRIPTS.get(service, []))

def test_every_environment_variable_is_read(compose):
    ld = _ld_variables()
    assert {"LD_MODEL_NAME", "LD_SERVE_ALIAS", "LD_PREDICTION_STORE", "LD_MIN_F1"} <= ld
    unknown = []
    for name, service in compose["services"].items():
        for var in _env(service):
            if var.startswith("LD_"): ok = var in ld
            elif var.startswith("MLFLOW_"): ok = _mlflow_reads(var)
            elif var.startswith(("POSTGRES_", "PG")): ok = var in POSTGRES_IMAGE_VARIABLES and service.get("image", "").startswith("postgres")
            else: ok = _script_reads(name, var)
            if not ok: unknown.append(f"{name}: {var}")
    assert not unknown, f"set in docker-compose.yaml but read by nothing: {unknown}"

def test_the_check_catches_a_misspelling():
    assert "LD_SERVE_ALIAS" in _ld_variables() and "LD_SERVE_ALIASES" not in _ld_variables()
    assert _mlflow_reads("MLFLOW_TRACKING_URI") and not _mlflow_reads("MLFLOW_TRACKING_URL")
    assert _script_reads("postgres", "PREDICTIONS_DB_PASSWORD") and not _script_reads("postgres", "PREDICTION_DB_PASSWORD")
    assert _script_reads("mlflow", "AUTH_DATABASE_URI") and not _script_reads("mlflow-users", "AUTH_DATABASE_URI")
    assert _script_reads("mlflow-users", "API_MLFLOW_PASSWORD") and not _script_reads("api", "API_MLFLOW_PASSWORD")

# -- the commands, started directly ------------------------------------------------------------------------------------

ENTRYPOINT, USERS_SCRIPT = ROOT / "docker" / "mlflow_entrypoint.py", ROOT / "docker" / "mlflow_users.py"

def _psql(server, user: str, db: str, sql: str) -> subprocess.CompletedProcess:
    "Run `sql` as `user` on `db` (loopback, trust authentication: the password is not what is tested here)."
    return subprocess.run([_psql_bin(), "-h", "127.0.0.1", "-p", str(server.port), "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          capture_output=True, text=True, timeout=60)

def _psql_bin() -> str:
    from procs import Postgres
    import shutil
    found = Postgres.bindir() / "psql"
    return str(found) if found.exists() else shutil.which("psql")

@pytest.fixture(scope="module")
def team_postgres(compose):
    """A PostgreSQL of this file's own (never the shared one: the init script makes fixed names), set up as the postgres
    image's first start does: POSTGRES_USER (a superuser) and POSTGRES_DB, then docker/postgres-init/*.sh."""
    import shutil, tempfile
    from procs import Postgres
    from loan_default.config import get_settings
    if Postgres.bindir() is None:
        if get_settings().require_postgres: pytest.fail("LD_REQUIRE_POSTGRES is set but PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = Postgres(Path(tempfile.mkdtemp(prefix="ld-pg-compose-"))).start()
    try:
        env = _env(compose["services"]["postgres"])
        user, db = env["POSTGRES_USER"], env["POSTGRES_DB"]
        for sql in (f'CREATE ROLE "{user}" SUPERUSER LOGIN', f'CREATE DATABASE "{db}" OWNER "{user}"'):
            r = _psql(server, "postgres", "postgres", sql); assert r.returncode == 0, r.stderr
        # the image runs each script with POSTGRES_* and the service's environment; psql reaches the server by PG*
        script_env = {**os.environ, **env, "PGHOST": "127.0.0.1", "PGPORT": str(server.port),
                      "PATH": f"{Path(_psql_bin()).parent}:{os.environ['PATH']}"}
        for script in SCRIPTS["postgres"]:
            r = subprocess.run(["sh", str(script)], capture_output=True, text=True, env=script_env, timeout=120)
            assert r.returncode == 0, r.stderr
        yield dict(server=server, env=script_env)
    finally:
        server.stop(); shutil.rmtree(server.root, ignore_errors=True)

def _local(url: str, pg) -> str:
    "A compose URL with the service name `postgres` replaced by the test's server on loopback."
    return url.replace("@postgres:5432/", f"@127.0.0.1:{pg.port}/")

def test_init_script_makes_the_databases(compose, team_postgres):
    pg = team_postgres["server"]
    names = set(_psql(pg, "mlflow", "postgres", "SELECT datname FROM pg_database").stdout.split())
    assert {"mlflow", "mlflow_auth", "predictions"} <= names
    assert _psql(pg, "mlflow", "mlflow", "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'predictions'").stdout.strip() == "t"
    # the prediction log's login reaches its own database only, never MLflow's
    for db in ("mlflow", "mlflow_auth"):
        r = _psql(pg, "predictions", db, "SELECT 1")
        assert r.returncode != 0 and "permission denied for database" in r.stderr, (db, r.stderr)
    # the API's store URL, as compose gives it, works for a table of its own
    import sqlalchemy as sa
    engine = sa.create_engine(_local(_env(compose["services"]["api"])["LD_PREDICTION_STORE"], pg))
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE compose_check (id int)")); c.execute(sa.text("INSERT INTO compose_check VALUES (1)"))
        assert c.execute(sa.text("SELECT count(*) FROM compose_check")).scalar() == 1
    engine.dispose()
    # without its password the script stops at once, naming it
    env = {k: v for k, v in team_postgres["env"].items() if k != "PREDICTIONS_DB_PASSWORD"}
    r = subprocess.run(["sh", str(SCRIPTS["postgres"][0])], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "PREDICTIONS_DB_PASSWORD" in r.stderr

def _server_argv_env(compose, pg, d: Path, port: int) -> tuple[list, dict]:
    "The mlflow service's entrypoint and command with local stand-ins: loopback and a free port, a folder for the volume."
    service = compose["services"]["mlflow"]
    local = {"--host": "127.0.0.1", "--port": str(port), "--artifacts-destination": str(d / "artifacts")}
    argv = [sys.executable, str(ENTRYPOINT), str(Path(sys.executable).parent / "mlflow")]
    for a in _argv(service)[1:]:
        name = a.split("=", 1)[0]
        argv.append(f"{name}={local[name]}" if name in local and "=" in a else _local(a, pg))
    assert all(f"{k}={v}" in argv for k, v in local.items()), argv
    env = _env(service)
    env |= {"AUTH_DATABASE_URI": _local(env["AUTH_DATABASE_URI"], pg), "MLFLOW_AUTH_CONFIG_PATH": str(d / "basic_auth.ini")}
    return argv, {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}, **env}

@pytest.fixture(scope="module")
def compose_mlflow(compose, team_postgres, tmp_path_factory):
    "The compose file's mlflow service on the databases the init script made; then its mlflow-users service against it."
    d, port, pg = tmp_path_factory.mktemp("compose-mlflow"), free_port(), team_postgres["server"]
    argv, env = _server_argv_env(compose, pg, d, port)
    log = open(d / "server.log", "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=d, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", timeout=120, proc=proc)
        users_env = _env(compose["services"]["mlflow-users"]) | {"MLFLOW_TRACKING_URI": url}
        r = subprocess.run([sys.executable, str(USERS_SCRIPT)], capture_output=True, text=True, timeout=120, env={**os.environ, **users_env})
        assert r.returncode == 0, r.stderr[-2000:]
        api, lab = (_env(compose["services"][s]) for s in ("api", "lab"))
        yield dict(url=url, port=port, proc=proc, dir=d, service=compose["services"]["mlflow"], admin=(users_env["MLFLOW_TRACKING_USERNAME"], users_env["MLFLOW_TRACKING_PASSWORD"]),
                   api=(api["MLFLOW_TRACKING_USERNAME"], api["MLFLOW_TRACKING_PASSWORD"]), lab=(lab["MLFLOW_TRACKING_USERNAME"], lab["MLFLOW_TRACKING_PASSWORD"]))
    finally:
        stop(proc); log.close()

def test_entrypoint_refuses_without_the_admin_password(compose, tmp_path):
    "Nothing in a file: without MLFLOW_AUTH_ADMIN_PASSWORD in the environment the server does not start."
    from procs import Postgres
    argv, env = _server_argv_env(compose, Postgres(tmp_path), tmp_path, free_port())
    for name in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={k: v for k, v in env.items() if k != name})
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: refusing to start") and name in lines[0], r.stderr
    assert not (tmp_path / "basic_auth.ini").exists()

def test_mlflow_command_answers_health(compose_mlflow):
    r = requests.get(compose_mlflow["url"] + "/health", timeout=5)
    assert r.status_code == 200 and r.text.strip() == "OK"

def test_healthcheck_command_passes(compose_mlflow):
    test = compose_mlflow["service"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    argv = [a.replace("127.0.0.1:5000", f"127.0.0.1:{compose_mlflow['port']}") for a in test[1:]]
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    assert subprocess.run(argv, timeout=30).returncode == 0

def test_the_admin_password_is_in_no_file(compose_mlflow):
    ini = (compose_mlflow["dir"] / "basic_auth.ini").read_text()
    assert "[mlflow]" in ini and compose_mlflow["admin"][1] not in ini
    assert oct((compose_mlflow["dir"] / "basic_auth.ini").stat().st_mode & 0o777) == "0o600"    # the user store's URL is in it

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"

def test_no_user_is_refused(compose_mlflow):
    url = compose_mlflow["url"]
    assert requests.get(url + SEARCH, timeout=10).status_code == 401
    assert requests.get(url + "/api/2.0/mlflow/registered-models/search", timeout=10).status_code == 401
    assert requests.get(url + SEARCH, auth=compose_mlflow["admin"], timeout=10).status_code == 200

def test_the_names_the_others_use_are_accepted(compose_mlflow):
    "The API and JupyterLab send `Host: mlflow:5000`; a host outside --allowed-hosts is refused (DNS-rebinding protection)."
    url, auth = compose_mlflow["url"] + SEARCH, compose_mlflow["api"]
    assert requests.get(url, headers={"Host": "mlflow:5000"}, auth=auth, timeout=10).status_code == 200
    assert requests.get(url, headers={"Host": "evil.example"}, auth=auth, timeout=10).status_code in (400, 403)

def test_artifacts_are_proxied_to_the_destination(compose_mlflow, monkeypatch):
    "As JupyterLab's user (the pipeline's): a run and an artifact, stored through the server on the volume's folder."
    from mlflow import MlflowClient
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", compose_mlflow["lab"][0]); monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", compose_mlflow["lab"][1])
    client = MlflowClient(tracking_uri=compose_mlflow["url"])
    exp = client.create_experiment("compose-check")
    run = client.create_run(exp)
    assert client.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
    f = compose_mlflow["dir"] / "note.txt"; f.write_text("proxied")
    client.log_artifact(run.info.run_id, str(f))
    stored = list((compose_mlflow["dir"] / "artifacts").rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "proxied"
    # the API's user reads it, and may not add to it
    api = compose_mlflow["api"]
    assert requests.get(compose_mlflow["url"] + "/api/2.0/mlflow/runs/get", params={"run_id": run.info.run_id}, auth=api, timeout=10).status_code == 200
    r = requests.post(compose_mlflow["url"] + "/api/2.0/mlflow/runs/create", json={"experiment_id": exp}, auth=api, timeout=10)
    assert r.status_code == 403

def test_one_worker_no_job_runner(compose_mlflow):
    "--workers=1 and MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: the server is at most two processes (the CLI and one uvicorn)."
    import psutil
    procs = [psutil.Process(compose_mlflow["proc"].pid)] + psutil.Process(compose_mlflow["proc"].pid).children(recursive=True)
    cmdlines = [" ".join(p.cmdline()) for p in procs]
    assert len(procs) <= 2, cmdlines
    assert not any("huey" in c or "job" in c.split("/")[-1] for c in cmdlines), cmdlines

"Shared fixtures: the real data (required in CI), and the project's console script."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from procs import free_port, wait_for, stop   # one home for starting and stopping servers: the benchmarks use them too
REAL_DATA = ROOT.parent / "shared" / "data" / "credit_risk_dataset.csv"
CLI = Path(sys.executable).parent / "loan-default"

@pytest.fixture(scope="session")
def real_data() -> Path:
    "The real dataset beside the project: CI (LD_REQUIRE_REAL_DATA=1) fails without it, a user's machine skips."
    if REAL_DATA.exists(): return REAL_DATA
    from loan_default.config import get_settings
    if get_settings().require_real_data: pytest.fail(f"LD_REQUIRE_REAL_DATA is set but {REAL_DATA} does not exist")
    pytest.skip(f"real data not found at {REAL_DATA} (put the shared data folder beside the project to run this)")

def skip_without_spark() -> None:
    "Skip the calling test module when pyspark is missing; under LD_REQUIRE_SPARK=1 (CI) that is a failure."
    try: import pyspark  # noqa: F401
    except ImportError:
        from loan_default.config import get_settings
        if get_settings().require_spark: raise ImportError("LD_REQUIRE_SPARK=1 but pyspark is not importable: pip install -e '.[spark]'") from None
        pytest.skip("pyspark is not installed (pip install -e '.[spark]'; set LD_REQUIRE_SPARK=1 to make this a failure)", allow_module_level=True)

def browser_missing() -> str | None:
    "Why no headless Chromium can be driven here (selenium, chromium or chromedriver missing), or None."
    try: import selenium  # noqa: F401
    except ImportError: return "selenium is not installed (pip install selenium)"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")): return "chromium is not installed (apt-get install -y chromium)"
    if not shutil.which("chromedriver"): return "chromedriver is not installed (apt-get install -y chromium-driver)"
    return None

def chromium(profile: Path, flags: list[str], page_timeout: float = 30, log_requests: bool = False):
    "Headless Chromium with `flags` and a fresh profile in `profile`, driven by the system chromedriver; skipped (failed under LD_REQUIRE_BROWSER=1) when absent."
    if why := browser_missing():
        from loan_default.config import get_settings
        if get_settings().require_browser: pytest.fail(f"LD_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for f in [*flags, f"--user-data-dir={profile}"]: opts.add_argument(f)
    if log_requests: opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=shutil.which("chromedriver")))   # no Selenium Manager download
    driver.set_page_load_timeout(page_timeout)
    return driver

# The environment the tests were started in. MLflow's set_tracking_uri / set_registry_uri also write
# MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into os.environ, so a test that points MLflow somewhere would otherwise
# send every later command-line run to that registry: commands and servers started by the tests get this one.
BASE_ENV = dict(os.environ)

MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

@pytest.fixture(autouse=True, scope="module")
def _fresh_mlflow_uris():
    "After each test file, MLflow's URIs (its globals and the variables it writes) are back to pytest's starting ones."
    yield
    import mlflow
    mlflow.set_tracking_uri(None); mlflow.set_registry_uri(None)
    for k in MLFLOW_URI_VARIABLES:
        if k in BASE_ENV: os.environ[k] = BASE_ENV[k]
        else: os.environ.pop(k, None)

def run_cli(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    "Run the installed `loan-default` console script as a user would (env values of None unset a variable)."
    full = {**BASE_ENV, **(env or {})}
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={k: v for k, v in full.items() if v is not None})

def one_line_error(r: subprocess.CompletedProcess, *words) -> str:
    "Assert `r` failed with one line on stderr, `error: ...`, containing `words`, and no traceback."
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for w in words: assert w in lines[0], lines[0]
    return lines[0]

@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory) -> Path:
    "A small synthetic training file (the model trains in seconds on it)."
    from loan_default.synth import write_synthetic
    return write_synthetic(tmp_path_factory.mktemp("data") / "synth.csv", n_rows=3_000, seed=3)

# Synthetic data tops out near 0.9 ROC AUC: tests on it lower the registration minimums; the real data meets the defaults.
SYNTHETIC_GATES = {"LD_MIN_F1": "0.3", "LD_MIN_ROC_AUC": "0.7"}

@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    "A real `mlflow server` on loopback: one worker, job execution off, proxied artifacts. Yields its URI."
    d = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{d}/mlflow.db", "--artifacts-destination", str(d / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**BASE_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{uri}/health", timeout=90, proc=proc)
        yield uri
    finally:
        stop(proc); log.close()

@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    "A real PostgreSQL server of the tests' own (procs.Postgres), stopped by its PID: CI (LD_REQUIRE_POSTGRES=1) fails without it."
    from procs import Postgres
    from loan_default.config import get_settings
    if Postgres.bindir() is None:
        if get_settings().require_postgres: pytest.fail("LD_REQUIRE_POSTGRES is set but PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    import tempfile
    # its own folder under /tmp: the postgres user must reach it (pytest's base temp folder is private to root)
    server = Postgres(Path(tempfile.mkdtemp(prefix="ld-pg-"))).start()
    try: yield server
    finally:
        server.stop()
        import shutil; shutil.rmtree(server.root, ignore_errors=True)

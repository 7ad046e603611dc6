"""The processes tests and benchmarks start: a free loopback port, waiting until a URL answers, stopping a process group.

tests/conftest.py and the benchmarks import these (benchmarks/ is on their path), so both start and stop servers alike."""
import os, signal, subprocess, time

def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on now."
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def wait_for(url: str, timeout: float = 60, proc=None) -> None:
    "Poll `url` until it answers 200, failing early if `proc` died."
    import requests
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None: raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code == 200: return
        except requests.RequestException: pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")

def stop(proc: subprocess.Popen) -> None:
    "Stop a process we started (with start_new_session=True), by its PID: its whole process group, SIGTERM then SIGKILL."
    if proc.poll() is None:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: return
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait()

class Postgres:
    """A real PostgreSQL server of our own: `initdb` into `root` and `pg_ctl start` on a loopback port, stopped by its PID.

    Debian's `postgresql` package provides the binaries (`.ci/run` installs it). `initdb` refuses to run as root, so as
    root the server runs as the `postgres` user, in a folder that user owns. No system service is involved."""
    def __init__(self, root, port: int | None = None):
        from pathlib import Path
        self.root, self.port = Path(root), port or free_port()
        self.data, self.log = self.root / "data", self.root / "server.log"

    @staticmethod
    def bindir():
        "The folder of `initdb` and `pg_ctl`, or None when PostgreSQL is not installed."
        import glob, shutil
        from pathlib import Path
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if found: return Path(found[-1]).parent
        initdb = shutil.which("initdb")
        return Path(initdb).resolve().parent if initdb else None

    def _run(self, *cmd, check=True) -> subprocess.CompletedProcess:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> "Postgres":
        "Create the cluster on first use (trust authentication on loopback only), then start it and wait until it accepts connections."
        bindir = self.bindir()
        if bindir is None: raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0: subprocess.run(["chown", "-R", "postgres:postgres", str(self.root)], check=True)
        if not (self.data / "PG_VERSION").exists():
            self._run(bindir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        self._run(bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start",
                  "-o", f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=on")
        return self

    @property
    def pid(self) -> int | None:
        "The postmaster's PID (first line of postmaster.pid), None when it is not running."
        try: return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError): return None

    def stop(self, timeout: float = 60) -> None:
        "Stop the server by its PID: SIGINT is PostgreSQL's fast shutdown (clients disconnected, everything committed kept)."
        pid = self.pid
        if pid is None: return
        try: os.kill(pid, signal.SIGINT)
        except ProcessLookupError: return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try: os.kill(pid, 0)
            except ProcessLookupError: return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        "A SQLAlchemy URL for `database` on this server (`driver` 'postgresql' for libpq tools such as psql)."
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        "Create database `name` (a fresh one each call: an existing one is dropped first) and return its SQLAlchemy URL."
        psql = self.bindir() / "psql"
        if not psql.exists():
            import shutil; psql = shutil.which("psql")
        for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
            self._run(psql, "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql)
        return self.url(name)

class SparkCluster:
    """A real Spark standalone cluster of our own: a master and `workers` workers on 127.0.0.1, stopped by their PIDs.

    pyspark's distribution provides the launcher (`bin/spark-class`; `make install-spark`). Each worker gets its own
    `--work-dir` (and scratch folder) under `root`, a temporary folder: without one a worker writes into the venv's
    `pyspark/work`. `.start()` returns once the master's status page (`/json`) lists every worker as ALIVE."""
    def __init__(self, root, workers: int = 2, cores: int = 1, memory: str = "1g"):
        from pathlib import Path
        self.root, self.workers, self.cores, self.memory = Path(root), workers, cores, memory
        self.port, self.ui_port = free_port(), free_port()
        self.procs: list[subprocess.Popen] = []

    @staticmethod
    def spark_home():
        "pyspark's own folder (its bin/spark-class launches the daemons), or None when pyspark is not installed."
        import importlib.util
        from pathlib import Path
        spec = importlib.util.find_spec("pyspark")
        return Path(spec.origin).parent if spec and spec.origin else None

    @property
    def master(self) -> str: return f"spark://127.0.0.1:{self.port}"

    @property
    def ui(self) -> str: return f"http://127.0.0.1:{self.ui_port}"

    def _launch(self, name: str, *args) -> subprocess.Popen:
        import sys
        home = self.spark_home()
        if home is None: raise RuntimeError("pyspark is not installed (make install-spark)")
        folder = self.root / name
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_DIRS": str(folder / "tmp"),
               "SPARK_LOG_DIR": str(folder), "SPARK_WORKER_DIR": str(folder / "work"), "PYSPARK_PYTHON": sys.executable}
        log = open(folder / "daemon.log", "w")
        proc = subprocess.Popen([str(home / "bin" / "spark-class"), *map(str, args)], stdout=log, stderr=subprocess.STDOUT,
                                cwd=folder, env=env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def status(self) -> dict:
        "The master's status page as JSON: `workers` (each with `state`), `aliveworkers`, `cores`, `activeapps`..."
        import requests
        return requests.get(f"{self.ui}/json/", timeout=5).json()

    def start(self, timeout: float = 120) -> "SparkCluster":
        "Start the master, then the workers, and wait until the master reports all of them ALIVE."
        master = self._launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", self.port,
                              "--webui-port", self.ui_port)
        try:
            wait_for(f"{self.ui}/json/", timeout=timeout, proc=master)
            for i in range(self.workers):
                self._launch(f"worker{i + 1}", "org.apache.spark.deploy.worker.Worker", self.master, "--host", "127.0.0.1",
                             "--cores", self.cores, "--memory", self.memory, "--webui-port", free_port(),
                             "--work-dir", self.root / f"worker{i + 1}" / "work")
            deadline = time.monotonic() + timeout
            while sum(w.get("state") == "ALIVE" for w in self.status().get("workers", [])) < self.workers:
                dead = [p for p in self.procs if p.poll() is not None]
                if dead: raise RuntimeError(f"a Spark daemon exited with {dead[0].returncode}: see {self.root}/*/daemon.log")
                if time.monotonic() > deadline: raise TimeoutError(f"{self.workers} workers not ALIVE at {self.ui} within {timeout} s")
                time.sleep(0.5)
        except BaseException:
            self.stop(); raise
        return self

    @property
    def pids(self) -> list[int]: return [p.pid for p in self.procs]

    def stop(self) -> None:
        "Stop the workers, then the master, each by its PID (its process group: the JVM and any executors it started)."
        for proc in reversed(self.procs): stop(proc)
        self.procs = []

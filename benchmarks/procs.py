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

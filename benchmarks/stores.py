"""Throwaway prediction stores for the benchmarks: the service's own tables (`loan_default.serve`'s schema), filled in
bulk (executemany on SQLite, COPY on PostgreSQL), and a command timed in its own process (seconds, CPU, peak memory)."""
import os, subprocess, time
from pathlib import Path

COLUMNS = {"predictions": ("application_id", "request_id", "scored_at", "model_name", "model_version", "probability_of_default",
                           "predicted_default", "decision", "inputs"),
           "shadow_predictions": ("application_id", "request_id", "scored_at", "model_name", "model_version", "model_alias",
                                  "probability_of_default", "predicted_default", "decision"),
           "outcomes": ("application_id", "loan_status", "observed_at", "recorded_at")}
STORED_TIME = "%Y-%m-%d %H:%M:%S.%f"          # how SQLite keeps a UTC time (its wall time as text); PostgreSQL takes it with "+00:00"

def stored_time(t, zoned: bool) -> str:
    "A UTC pandas/datetime time as the store's backend takes it: naive text on SQLite, with its zone on PostgreSQL."
    return t.strftime(STORED_TIME + ("+00:00" if zoned else ""))

def create_tables(url: str) -> None:
    "The service's tables, created by the service's own schema (with its unique application_id indexes)."
    import sqlalchemy as sa
    from loan_default.serve import METADATA
    engine = sa.create_engine(url); METADATA.create_all(engine); engine.dispose()

def _fill_sqlite(path: str, batches) -> None:
    import sqlite3
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for batch in batches:
            for table, rows in batch.items():
                cols = COLUMNS[table]
                conn.executemany(f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})", rows)

def _fill_postgres(url: str, batches) -> None:
    import psycopg
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for batch in batches:
            for table, rows in batch.items():
                with conn.cursor().copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as cp:
                    for r in rows: cp.write_row(r)
        conn.execute("ANALYZE")

def build_store(backend: str, name: str, work: Path, pg, batches) -> str:
    """A new store of `backend` ("sqlite": a file under `work`; "postgres": a database of the server `pg`) holding
    `batches` (each a dict: table -> rows, in `COLUMNS` order; times from `stored_time`); its URL."""
    if backend == "sqlite":
        path = work / f"{name}.db"; path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"; create_tables(url); _fill_sqlite(str(path), batches)
    else:
        url = pg.create_database(name); create_tables(url); _fill_postgres(url, batches)
    return url

def run_timed(args: list, log: Path, env: dict | None = None) -> dict:
    "Run `args` in its own process (output to `log`): wall and CPU seconds, peak memory (MiB), exit code, its last line."
    with open(log, "w") as f:
        t = time.perf_counter()
        proc = subprocess.Popen([str(a) for a in args], env=env, stdout=f, stderr=f)
        _, status, usage = os.wait4(proc.pid, 0)          # the child's own rusage: ru_maxrss is its VmHWM, in KiB
        seconds = time.perf_counter() - t
    line = log.read_text().strip().splitlines()[-1:] or [""]
    return dict(seconds=round(seconds, 1), cpu_s=round(usage.ru_utime + usage.ru_stime, 1),    # CPU: less at the mercy of other jobs than wall time
                peak_mib=round(usage.ru_maxrss / 1024), exit=os.waitstatus_to_exitcode(status), said=line[0][:200])

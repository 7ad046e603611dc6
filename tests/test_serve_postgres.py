"""The prediction service with its store on a real PostgreSQL (`LD_PREDICTION_STORE=postgresql+psycopg://...`), as a
real `loan-default serve` process: predictions and outcomes land in PostgreSQL's tables, a retried id is answered from
the store, two workers racing one id leave one row; and the database stopped while serving under load gives 503s
(/predict and /ready) that turn back into 200s once it is started again, with every acknowledged row in the table.

The registry is tests/test_serve_faults.py's embedded MLflow (two synthetic versions, @production on the first); the
shared `postgres` fixture (tests/conftest.py) says whether PostgreSQL is here (CI fails without it); the durability
test stops and starts a server of its own (`procs.Postgres` in its own temporary folder), never the shared one."""
import shutil, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest, requests
import sqlalchemy as sa
from conftest import stop
from procs import Postgres
from serve_bench import _all_workers_ready, service_command
from test_serve import H, Service
from test_serve_faults import post, registry, row, wait_ready          # noqa: F401 (fixtures)

class WorkersService(Service):
    "`Service` started as `serve(workers=N)` starts it (N uvicorn workers, each with its own store connection)."
    def __init__(self, folder: Path, registry, workers: int, **env):
        import test_serve
        command, test_serve.service_command = test_serve.service_command, lambda host, port: service_command(host, port, workers)
        try: super().__init__(folder, registry, **env)
        finally: test_serve.service_command = command

def stored(url: str, table: str = "predictions", columns: str = "application_id") -> list:
    "Rows of `table` read by a separate connection, as monitoring reads them."
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c: return [tuple(r) for r in c.exec_driver_sql(f"SELECT {columns} FROM {table} ORDER BY id")]
    finally: engine.dispose()

def test_predictions_and_outcomes_in_postgres(postgres, registry, row, tmp_path):
    url = postgres.create_database("serve_store")
    s = WorkersService(tmp_path, registry, 2, LD_PREDICTION_STORE=url)
    try:
        _all_workers_ready(s.url, 2, s.proc, timeout=180)                   # both workers migrated the same empty database at once
        first = post(s.url, [row | {"application_id": "pg-1"}, row | {"application_id": "pg-2"}])
        assert first.status_code == 200, first.text
        again = post(s.url, [row | {"application_id": "pg-1"}]).json()["predictions"][0]
        assert again == first.json()["predictions"][0] | {"replayed": True}
        with ThreadPoolExecutor(8) as ex:                                    # 8 connections spread over the 2 workers, one new id
            racing = list(ex.map(lambda _: post(s.url, [row | {"application_id": "pg-race"}]), range(8)))
        assert [r.status_code for r in racing] == [200] * 8, [r.text for r in racing if r.status_code != 200]
        assert sorted(r.json()["predictions"][0]["replayed"] for r in racing) == [False] + [True] * 7
        other = post(s.url, [row | {"application_id": "pg-3"}, row | {"application_id": "pg-1", "person_income": row["person_income"] + 1000}])
        assert other.status_code == 409 and other.json()["error"] == "application_id_conflict", other.text
        r = requests.post(f"{s.url}/outcomes", headers=H, json={"outcomes": [{"application_id": "pg-1", "loan_status": 1},
                                                                              {"application_id": "never-scored", "loan_status": 0}]})
        assert r.json() == {"recorded": 1, "already_recorded": 0, "unmatched": ["never-scored"]}, r.text
        r = requests.post(f"{s.url}/outcomes", headers=H, json={"outcomes": [{"application_id": "pg-1", "loan_status": 0}]})
        assert r.status_code == 409 and r.json()["error"] == "outcome_conflict", r.text
        rows = stored(url, columns="application_id, model_name, model_version, probability_of_default, decision, inputs")
        assert [r[0] for r in rows] == ["pg-1", "pg-2", "pg-race"]
        answer = first.json()["predictions"][0]
        assert rows[0][2:5] == ("1", answer["probability_of_default"], answer["decision"])
        assert rows[0][5]["person_income"] == row["person_income"] and "application_id" not in rows[0][5]
        assert stored(url, "outcomes", "application_id, loan_status") == [("pg-1", 1)]
    finally: stop(s.proc)

class Load(threading.Thread):
    "One client sending one-row requests with new ids until stopped: {id: status} (a status of None: no answer)."
    def __init__(self, url: str, row: dict, prefix: str):
        super().__init__(daemon=True)
        self.url, self.row, self.prefix, self.statuses, self.halt = url, row, prefix, {}, threading.Event()
    def run(self):
        i = 0
        while not self.halt.is_set():
            a = f"{self.prefix}-{i}"; i += 1
            try: self.statuses[a] = post(self.url, [self.row | {"application_id": a}]).status_code
            except requests.RequestException: self.statuses[a] = None
    def acked(self) -> set: return {a for a, st in self.statuses.items() if st == 200}
    def count(self, status) -> int: return sum(st == status for st in self.statuses.copy().values())   # a copy: the thread adds as we count

def wait_until(check, timeout: float):
    deadline = time.monotonic() + timeout
    while not (ok := check()) and time.monotonic() < deadline: time.sleep(0.2)
    return ok

def test_database_stopped_while_serving(postgres, registry, row, tmp_path):
    server = Postgres(tempfile.mkdtemp(prefix="ld-pg-durable-")).start()       # our own: this test stops it
    s = None
    try:
        url = server.create_database("serve_durable")
        s = Service(tmp_path, registry, LD_PREDICTION_STORE=url, LD_SERVE_STORE_CHECK_S="0.5")
        s.ready()
        load = Load(s.url, row, "load"); load.start()
        assert wait_until(lambda: load.count(200) >= 30, 60)
        server.stop()                                                          # the database goes away under load
        assert wait_until(lambda: requests.get(f"{s.url}/ready", timeout=10).status_code == 503, 30)
        down = post(s.url, [row | {"application_id": "while-down"}])
        assert down.status_code == 503 and down.json()["error"] == "prediction_store_unavailable", down.text
        assert "'serve_durable' on postgresql" in down.json()["message"] and "127.0.0.1" not in down.json()["message"]
        ready = requests.get(f"{s.url}/ready", timeout=10)
        assert ready.status_code == 503 and "cannot be reached" in ready.json()["message"], ready.text
        refused_during = load.count(503)
        server.start()                                                         # ... and comes back: no restart of the service
        assert wait_ready(s, timeout=30).status_code == 200
        after = load.count(200)
        assert wait_until(lambda: load.count(200) >= after + 30, 60)           # acknowledging again
        load.halt.set(); load.join(timeout=60)
        retried = post(s.url, [row | {"application_id": "while-down"}])       # the client retries what was refused
        assert retried.status_code == 200, retried.text
        assert set(load.statuses.values()) <= {200, 503}, set(load.statuses.values())
        ids = [r[0] for r in stored(url)]
        acked = load.acked() | {"while-down"}
        print(f"\nPostgreSQL stopped while serving: {len(acked)} acknowledged, {refused_during} refused with 503 while down, "
              f"{len(acked - set(ids))} acknowledged rows missing")
        assert refused_during >= 1 and not acked - set(ids)                    # every 200 is in the table
        assert len(ids) == len(set(ids))                                       # and none twice
    finally:
        if s is not None: stop(s.proc)
        server.stop(); shutil.rmtree(server.root, ignore_errors=True)

def test_a_held_lock_is_a_503_not_a_hang(postgres, registry, row, tmp_path):
    "Someone holds the predictions table locked (a migration, a VACUUM FULL): /predict answers 503 after the statement timeout, then 200 once it is released."
    url = postgres.create_database("serve_locked")
    s = Service(tmp_path, registry, LD_PREDICTION_STORE=url)
    holder = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        s.ready()
        assert post(s.url, [row | {"application_id": "before-lock"}]).status_code == 200
        with holder.connect() as conn:
            conn.exec_driver_sql("BEGIN"); conn.exec_driver_sql("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
            t0 = time.monotonic()
            locked = requests.post(f"{s.url}/predict", headers=H, json={"data": [row | {"application_id": "under-lock"}]}, timeout=120)
            waited = time.monotonic() - t0
            conn.exec_driver_sql("ROLLBACK")
        print(f"\nheld lock: answered {locked.status_code} after {waited:.1f} s")
        assert locked.status_code == 503 and locked.json()["error"] == "prediction_store_unavailable", locked.text
        assert wait_ready(s, timeout=30).status_code == 200
        again = post(s.url, [row | {"application_id": "under-lock"}])           # the client retries what was refused
        assert again.status_code == 200, again.text
        assert [r[0] for r in stored(url)] == ["before-lock", "under-lock"]
    finally:
        stop(s.proc); holder.dispose()

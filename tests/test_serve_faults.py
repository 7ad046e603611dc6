"""The prediction service as a real process under faults of its prediction store, retried and repeated requests, and
loose HTTP: the store file deleted, replaced or on a full disk while serving; the same application id sent again,
in a race, or twice in one request; repeated JSON keys, wrong Content-Type, gzip bodies and bombs, HEAD probes,
stalled bodies and stalled headers, bodies that cannot be read (not UTF-8, another charset, nested 900 deep, a
5,000-digit number, a negative Content-Length); a reload whose new version is broken, loads but cannot score, or whose
alias was deleted; the store deleted just before a stop, damaged in place, or its WAL orphaned. Each test asserts what a caller sees AND the rows on disk.

The registry is an embedded MLflow (SQLite file) holding two versions trained on synthetic data, @production on the
first; the service is started the way `loan-default serve` starts it (helpers shared with tests/test_serve.py)."""
import contextlib, gzip, json, os, signal, socket, sqlite3, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest, requests
from conftest import one_line_error, run_cli, stop
from test_serve import ADMIN, H, NAME, Service, single_row_bodies, train_registered

class EmbeddedRegistry:
    "An embedded MLflow registry (a SQLite file): `Service` only needs its `uri`."
    def __init__(self, folder: Path): self.folder, self.uri = folder, f"sqlite:///{folder}/mlflow.db"

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    reg = EmbeddedRegistry(tmp_path_factory.mktemp("registry"))
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = reg.uri
    try:
        assert train_registered(reg.folder, NAME, seeds=(1, 2)) == "1"          # v1 @production, v2 @staging
        yield reg
    finally:
        if before is None: os.environ.pop("MLFLOW_TRACKING_URI", None)
        else: os.environ["MLFLOW_TRACKING_URI"] = before

@pytest.fixture(scope="module")
def service(registry, tmp_path_factory):
    s = Service(tmp_path_factory.mktemp("service"), registry, LD_SERVE_STORE_CHECK_S="0.5")
    try:
        assert s.ready()["model"]["version"] == "1"
        yield s
    finally: stop(s.proc)

@pytest.fixture(scope="module")
def row():
    return json.loads(single_row_bodies(1)[0])["data"][0]

def on_disk(path: Path, table: str = "predictions") -> list:
    "Application ids in the store file, read by a separate connection (as monitoring reads them)."
    if not path.exists(): return []
    with contextlib.closing(sqlite3.connect(path)) as c: return [r[0] for r in c.execute(f"select application_id from {table}")]

def post(url, rows, **kw):
    return requests.post(f"{url}/predict", headers=H, json={"data": rows}, timeout=30, **kw)

def send(s: Service, row: dict, prefix: str, n: int) -> dict:
    "n one-row requests with ids `prefix-i`; {id: status}."
    return {a: post(s.url, [row | {"application_id": a}]).status_code for a in (f"{prefix}-{i}" for i in range(n))}

def acked(statuses: dict) -> set: return {a for a, st in statuses.items() if st == 200}

def wait_ready(s: Service, timeout: float = 15) -> requests.Response:
    deadline = time.monotonic() + timeout
    while (r := requests.get(f"{s.url}/ready", timeout=5)).status_code != 200 and time.monotonic() < deadline: time.sleep(0.2)
    return r

# ---------------------------------------------------------------- class 3: the store deleted, replaced, full
def test_store_deleted_while_serving(service, row):
    before = send(service, row, "del-a", 20)
    assert set(before.values()) == {200}
    for suffix in ("", "-wal", "-shm"): Path(f"{service.store}{suffix}").unlink(missing_ok=True)
    after = send(service, row, "del-b", 20)
    assert set(after.values()) <= {200, 503}, after
    assert wait_ready(service).status_code == 200
    missing = (acked(before) | acked(after)) - set(on_disk(service.store))
    print(f"\nstore deleted while serving: {len(acked(before) | acked(after))} acknowledged, {len(missing)} missing from the file")
    assert not missing

def test_store_replaced_by_junk_then_freed(service, row):
    before = send(service, row, "rep-a", 10)
    moved = service.store.with_name("moved-away.db")
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{service.store}{suffix}").exists(): os.replace(f"{service.store}{suffix}", f"{moved}{suffix}")
    service.store.write_text("this is not a database\n" * 100)
    during = send(service, row, "rep-b", 5)
    assert set(during.values()) == {503}, during
    r = post(service.url, [row | {"application_id": "rep-c"}])
    assert r.json()["error"] == "prediction_store_unavailable" and "prediction store predictions.db" in r.json()["message"], r.text
    ready = requests.get(f"{service.url}/ready")
    assert ready.status_code == 503 and "prediction store predictions.db" in ready.json()["message"], ready.text
    assert service.store.read_text().startswith("this is not a database")            # the junk is not overwritten
    service.store.unlink()                                                               # the operator frees the path
    assert wait_ready(service).status_code == 200                                        # no restart, no request needed
    after = send(service, row, "rep-d", 5)
    assert set(after.values()) == {200}
    stored = set(on_disk(service.store))
    assert not (acked(before) | acked(after)) - stored and not set(during) & stored      # every 200 on disk, no 503'd row

@pytest.fixture
def small_disk(tmp_path):
    "A 2 MB tmpfs (we run as root in CI); skipped where mounting is not allowed."
    mnt = tmp_path / "small-disk"; mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try: yield mnt
    finally: subprocess.run(["umount", "-l", str(mnt)], capture_output=True)

def test_disk_full(registry, small_disk, row, tmp_path):
    s = Service(tmp_path, registry, LD_PREDICTION_STORE=f"sqlite:///{small_disk}/predictions.db", LD_SERVE_STORE_CHECK_S="0.5")
    s.store = small_disk / "predictions.db"
    try:
        s.ready()
        before = send(s, row, "full-a", 10)
        filler = small_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)                                   # fill the disk to the last byte
        with contextlib.suppress(OSError):
            while True: os.write(fd, b"\0" * 4096)
        os.close(fd)
        during = send(s, row, "full-b", 60)
        assert 503 in during.values(), during
        r = post(s.url, [row | {"application_id": "full-c"}])
        assert r.status_code == 503 and "prediction store predictions.db" in r.json()["message"] and "full" in r.json()["message"], r.text
        assert requests.get(f"{s.url}/ready").status_code == 503
        filler.unlink()
        assert wait_ready(s).status_code == 200
        after = send(s, row, "full-d", 10)
        assert set(after.values()) == {200}
        stop(s.proc)                                                                      # and after the process is gone
        ids = acked(before) | acked(during) | acked(after)
        missing = ids - set(on_disk(s.store))
        print(f"\ndisk full: {len(ids)} acknowledged ({len(acked(during))} while filling), {len(missing)} missing")
        assert not missing
    finally: stop(s.proc)

def test_old_store_opens(registry, row, tmp_path):
    "A store written by the previous version (no unique ids, an id stored three times) opens; the repeats are set aside."
    store = tmp_path / "predictions.db"
    with contextlib.closing(sqlite3.connect(store)) as c:
        c.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, application_id VARCHAR(128) NOT NULL, request_id VARCHAR(64) NOT NULL, "
                  "scored_at DATETIME NOT NULL, model_name VARCHAR(256) NOT NULL, model_version VARCHAR(32) NOT NULL, probability_of_default FLOAT NOT NULL, "
                  "predicted_default INTEGER NOT NULL, decision VARCHAR(16) NOT NULL, inputs JSON NOT NULL)")
        c.execute("CREATE TABLE outcomes (id INTEGER PRIMARY KEY, application_id VARCHAR(128) NOT NULL, loan_status INTEGER NOT NULL, observed_at DATETIME, recorded_at DATETIME NOT NULL)")
        for i in range(3): c.execute("INSERT INTO predictions VALUES (?, 'old-1', 'r', '2024-01-01 00:00:00', ?, '1', 0.1, 0, 'approve', ?)", (i + 1, NAME, json.dumps(row)))
        c.commit()
    s = Service(tmp_path, registry)
    try:
        s.ready()
        r = post(s.url, [row | {"application_id": "old-1"}])                            # the old row answers the retry
        assert r.status_code == 200 and r.json()["predictions"][0]["replayed"] is True, r.text
        assert on_disk(store) == ["old-1"] and len(on_disk(store, "predictions_repeats")) == 2
    finally: stop(s.proc)

# ---------------------------------------------------------------- class 4: one row per application
def test_retries_and_races_store_one_row(service, row):
    first = post(service.url, [row | {"application_id": "idem-1"}]).json()["predictions"][0]
    again = post(service.url, [row | {"application_id": "idem-1"}, row | {"application_id": "idem-2"}]).json()["predictions"]
    assert again[0] == first | {"replayed": True} and again[1]["replayed"] is False
    with ThreadPoolExecutor(8) as ex:                                                    # 8 concurrent requests, one new id
        racing = list(ex.map(lambda _: post(service.url, [row | {"application_id": "race-1"}]), range(8)))
    assert [r.status_code for r in racing] == [200] * 8
    answers = [r.json()["predictions"][0] for r in racing]
    assert sorted(a["replayed"] for a in answers) == [False] + [True] * 7
    assert len({a["probability_of_default"] for a in answers}) == 1
    other = post(service.url, [row | {"application_id": "idem-3"}, row | {"application_id": "idem-1", "person_income": row["person_income"] + 1000}])
    assert other.status_code == 409 and other.json()["error"] == "application_id_conflict" and "'idem-1'" in other.json()["message"], other.text
    twice = post(service.url, [row | {"application_id": "dup-1"}, row, row | {"application_id": "dup-1"}])
    assert twice.status_code == 422 and twice.json()["message"] == "row 2: application_id repeats row 0's application_id 'dup-1'", twice.text
    ids = on_disk(service.store)
    assert ids.count("idem-1") == 1 and ids.count("race-1") == 1 and "idem-3" not in ids and "dup-1" not in ids

def test_outcomes_only_for_scored_ids_and_first_one_stands(service, row):
    assert post(service.url, [row | {"application_id": "out-1"}, row | {"application_id": "out-2"}]).status_code == 200
    url = f"{service.url}/outcomes"
    r = requests.post(url, headers=H, json={"outcomes": [{"application_id": "out-1", "loan_status": 1}, {"application_id": "never-scored", "loan_status": 0}]})
    assert r.status_code == 200 and r.json() == {"recorded": 1, "already_recorded": 0, "unmatched": ["never-scored"]}, r.text
    r = requests.post(url, headers=H, json={"outcomes": [{"application_id": "out-1", "loan_status": 1}]})
    assert r.json() == {"recorded": 0, "already_recorded": 1, "unmatched": []}
    r = requests.post(url, headers=H, json={"outcomes": [{"application_id": "out-2", "loan_status": 0}, {"application_id": "out-1", "loan_status": 0}]})
    assert r.status_code == 409 and r.json()["error"] == "outcome_conflict" and "'out-1' already has outcome 1" in r.json()["message"], r.text
    r = requests.post(url, headers=H, json={"outcomes": [{"application_id": "out-2", "loan_status": 0}, {"application_id": "out-2", "loan_status": 0}]})
    assert r.status_code == 422 and "row 1" in r.json()["message"] and "row 0" in r.json()["message"]
    with contextlib.closing(sqlite3.connect(service.store)) as c:
        assert c.execute("select application_id, loan_status from outcomes where application_id like 'out-%' or application_id = 'never-scored'").fetchall() == [("out-1", 1)]

# ---------------------------------------------------------------- class 9: HTTP looseness
def test_strict_bodies_and_head(service, row):
    url, n0 = f"{service.url}/predict", len(on_disk(service.store))
    body = json.dumps({"data": [row | {"application_id": "dupkey-1"}]})
    nested = body[:-3] + ', "person_age": 150}]}'                                         # person_age given twice in row 0
    r = requests.post(url, headers=H | {"content-type": "application/json"}, data=nested)
    assert r.status_code == 422 and r.json()["message"] == "row 0: person_age is given more than once", r.text
    r = requests.post(url, headers=H | {"content-type": "application/json"}, data=body[:-1] + ', "reasons": true, "reasons": false}')
    assert r.status_code == 422 and "reasons is given more than once" in r.json()["message"]
    for ctype in (None, "text/plain", "application/x-www-form-urlencoded"):
        r = requests.post(url, headers=H | ({"content-type": ctype} if ctype else {}), data=body.encode())
        assert r.status_code == 415 and "application/json" in r.json()["message"], (ctype, r.text)
    r = requests.post(url, headers=H | {"content-type": "application/json", "content-encoding": "gzip"}, data=gzip.compress(body.encode()))
    assert r.status_code == 200 and r.json()["predictions"][0]["application_id"] == "dupkey-1", r.text
    bomb = gzip.compress(b'{"data": [' + b" " * 100_000_000 + b"]}")                    # 100 MB from ~100 kB
    r = requests.post(url, headers=H | {"content-type": "application/json", "content-encoding": "gzip"}, data=bomb)
    assert r.status_code == 413 and "decompressed" in r.json()["message"], r.text
    r = requests.post(url, headers=H | {"content-type": "application/json", "content-encoding": "br"}, data=body)
    assert r.status_code == 415
    assert len(on_disk(service.store)) == n0 + 1
    for path, headers in (("/health", {}), ("/ready", {}), ("/model", H), ("/metrics", H)):
        r = requests.head(f"{service.url}{path}", headers=headers)
        assert r.status_code == 200 and r.content == b"", (path, r.status_code)
    assert requests.head(f"{service.url}/model").status_code == 401

def _half_sent(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {H['X-API-Key']}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
              + b'{"data": [{"person_age": ')
    return s

def _drain(socks, t0: float, wait_s: float) -> tuple[list[bytes], list[float]]:
    "Read each stalled socket until the server closes it or `wait_s` after `t0` passes: (what each got, seconds to each close)."
    answers, closed_at = [], []
    for sock in socks:
        sock.settimeout(max(0.1, t0 + wait_s - time.monotonic()))
        data = b""
        with contextlib.suppress(socket.timeout, ConnectionResetError):
            while chunk := sock.recv(65536): data += chunk
            closed_at.append(time.monotonic() - t0)                                      # recv returned b"": the server closed it
        answers.append(data); sock.close()
    return answers, closed_at

def test_stalled_bodies_are_timed_out_and_closed(service, row):
    "100 connections send half a body and stall: each gets 408 and is closed within the body timeout (5 s by default), while normal requests go on."
    t0 = time.monotonic()
    socks = [_half_sent(service.port) for _ in range(100)]
    ok = send(service, row, "during-stall", 20)
    assert set(ok.values()) == {200}
    answers, closed_at = _drain(socks, t0, wait_s=9)
    answers = [data.split(b"\r\n", 1)[0] for data in answers]
    print(f"\n100 stalled bodies: {len(closed_at)} closed by the server, the last after {max(closed_at, default=float('nan')):.1f} s")
    assert len(closed_at) == 100 and max(closed_at) < 8
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), set(answers)

# ---------------------------------------------------------------- class 8: a refused reload is not "not ready"
def test_refused_reload_keeps_serving(service, registry, row):
    from mlflow import MlflowClient
    from loan_default.registry import promote
    client = MlflowClient(registry.uri)
    model_id = client.get_model_version(NAME, "2").source.removeprefix("models:/")
    artifacts = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    (artifacts / "MLmodel").unlink()                                                     # version 2 is broken
    assert promote(NAME)[0] == "2"
    r = requests.post(f"{service.url}/admin/reload", headers={"X-API-Key": ADMIN})
    assert r.status_code == 409 and r.json()["error"] == "reload_refused" and "still serving version 1" in r.json()["message"], r.text
    assert "has no version" not in r.json()["message"]
    ready = requests.get(f"{service.url}/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["refused"]["version"] == "2", ready.text
    info = requests.get(f"{service.url}/model", headers=H).json()
    assert info["version"] == "1" and info["refused"]["version"] == "2" and "could not be loaded" in info["refused"]["reason"]
    p = post(service.url, [row | {"application_id": "after-refusal"}])
    assert p.status_code == 200 and p.json()["model"]["version"] == "1"
    assert "after-refusal" in on_disk(service.store)

# ---------------------------------------------------------------- class 3, continued: a stop right after a delete, damage in place
def test_store_deleted_then_stopped_at_once_loses_nothing(registry, row, tmp_path):
    "Six clients write; the store is deleted and the service is sent SIGTERM 0.1 s later: every acknowledged row is in the file at the path."
    s = Service(tmp_path, registry, LD_SERVE_VERSION="1")                                  # pinned: an earlier test left @production on a broken version
    try:
        s.ready()
        statuses, halt = {}, threading.Event()
        def client(k):
            i = 0
            while not halt.is_set():
                a = f"stop-{k}-{i}"; i += 1
                with contextlib.suppress(requests.RequestException): statuses[a] = post(s.url, [row | {"application_id": a}]).status_code
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads: t.start()
        time.sleep(1.5)
        halt.set()
        for t in threads: t.join()
        for suffix in ("", "-wal", "-shm"): Path(f"{s.store}{suffix}").unlink(missing_ok=True)
        time.sleep(0.1)
        os.killpg(s.proc.pid, signal.SIGTERM); s.proc.wait(timeout=60)
        ids = acked(statuses)
        missing = ids - set(on_disk(s.store))
        print(f"\nstore deleted, SIGTERM 0.1 s later: {len(ids)} acknowledged, {len(missing)} missing")
        assert len(ids) > 20 and not missing
    finally: stop(s.proc)

def test_orphaned_wal_refuses_to_start(tmp_path):
    "The store file is gone but its WAL is there (a delete, then kill -9): the service does not start over it."
    (tmp_path / "predictions-wal-only.db-wal").write_bytes(os.urandom(4096))
    r = run_cli("serve", "--port", "1", env={"LD_PREDICTION_STORE": f"sqlite:///{tmp_path}/predictions-wal-only.db"}, timeout=120)
    one_line_error(r, "predictions-wal-only.db is missing but its write-ahead log predictions-wal-only.db-wal is there")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions-wal-only.db-wal"]          # nothing created beside it

def test_store_damaged_in_place_recovers(registry, row, tmp_path):
    "Checkpoint, then truncate the store file to 0 bytes (and, again, overwrite it with junk in place): writes recover on their own; the damaged file is kept aside."
    s = Service(tmp_path, registry, LD_SERVE_VERSION="1")
    try:
        s.ready()
        assert set(send(s, row, "dmg-a", 10).values()) == {200}
        with contextlib.closing(sqlite3.connect(s.store)) as c: c.execute("pragma wal_checkpoint(TRUNCATE)")
        os.truncate(s.store, 0)
        after = send(s, row, "dmg-b", 10)
        assert set(after.values()) == {200}, after
        with open(s.store, "r+b") as f: f.write(b"this is not a database any more" * 200)       # same file, junk written over it
        again = send(s, row, "dmg-c", 10)
        assert set(again.values()) == {200}, again
        assert requests.get(f"{s.url}/ready").status_code == 200
        stop(s.proc)
        assert not (acked(after) | acked(again)) - set(on_disk(s.store))
        kept = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
        assert any(p.stat().st_size == 0 for p in kept)                                # the truncated file, kept aside (junk over pages the WAL still holds may never be seen)
    finally: stop(s.proc)

# ---------------------------------------------------------------- class 9, continued: heads that stall, bodies that cannot be read
def _half_head(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return s

def test_stalled_headers_are_timed_out_and_closed(registry, row, tmp_path):
    "200 connections send half a request head and stall: each gets a 408 and is closed after the header timeout, while normal requests go on."
    s = Service(tmp_path, registry, LD_SERVE_HEADER_TIMEOUT_S="2", LD_SERVE_VERSION="1")
    try:
        s.ready()
        t0 = time.monotonic()
        socks = [_half_head(s.port) for _ in range(200)]
        ok = send(s, row, "during-slow-heads", 10)
        assert set(ok.values()) == {200} and time.monotonic() - t0 < 2
        answers, closed = _drain(socks, t0, wait_s=10)
        print(f"\n200 stalled heads: {len(closed)} closed by the server, the last after {max(closed, default=float('nan')):.1f} s")
        assert len(closed) == 200 and max(closed) < 6
        assert all(a.startswith(b"HTTP/1.1 408") and b'"error":"header_timeout"' in a for a in answers), {a[:40] for a in answers}
        assert set(on_disk(s.store)) == set(ok)
    finally: stop(s.proc)

def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data); out = b""
        with contextlib.suppress(socket.timeout):
            while chunk := s.recv(65536): out += chunk
        return out

def test_unreadable_bodies_are_named(service, row):
    "Bodies that cannot be read get a 4xx JSON error saying why; none is stored, none is a 500."
    url, n0 = f"{service.url}/predict", len(on_disk(service.store))
    body = json.dumps({"data": [row | {"application_id": "unread-1"}]})
    J = H | {"content-type": "application/json"}
    cases = {
        "deep": (J, '{"data": ' + "[" * 900 + "]" * 900 + "}", 422, "nested more than 16 levels"),
        "deeper": (J, '{"data": [{"x": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}]}", 422, "nested more than 16 levels"),
        "not utf-8": (J, body.replace('"unread-1"', '"caf\xe9"').encode("latin-1"), 400, "not UTF-8 (byte 0xe9 at offset"),
        "utf-16": (J, body.encode("utf-16"), 400, "not UTF-8 (byte 0xff at offset 0)"),
        "charset": (H | {"content-type": "application/json; charset=latin-1"}, body, 415, "utf-8"),
        "long int": (J, body.replace(f'"person_age": {json.dumps(row["person_age"])}', '"person_age": ' + "9" * 5000), 422, "number in the body is too long"),
        "reasons string": (J, body[:-1] + ', "reasons": "false"}', 422, 'reasons must be "declines", "all" or "none" (or true'),
        "reasons 0": (J, body[:-1] + ', "reasons": 0}', 422, 'reasons must be "declines", "all" or "none" (or true'),
        "reasons unknown mode": (J, body[:-1] + ', "reasons": "approvals"}', 422, 'reasons must be "declines", "all" or "none" (or true'),
    }
    for name, (headers, data, status, words) in cases.items():
        r = requests.post(url, headers=headers, data=data if isinstance(data, bytes) else data.encode())
        assert r.status_code == status and words in r.json()["message"], (name, r.status_code, r.text[:300])
    raw = _raw(service.port, f"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {H['X-API-Key']}\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n{{}}".encode())
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(payload)["error"] == "bad_request", raw[:300]
    assert len(on_disk(service.store)) == n0
    assert requests.get(f"{service.url}/ready").status_code == 200                            # the process is fine

def test_outcome_times_in_utc_and_strict_status(service, row):
    assert post(service.url, [row | {"application_id": "tz-1"}, row | {"application_id": "tz-2"}]).status_code == 200
    url = f"{service.url}/outcomes"
    r = requests.post(url, headers=H, json={"outcomes": [{"application_id": "tz-1", "loan_status": True}]})
    assert r.status_code == 422 and "loan_status" in r.json()["message"], r.text
    r = requests.post(url, headers=H, json={"outcomes": [{"application_id": "tz-1", "loan_status": 1, "observed_at": "2024-03-01T10:00:00+02:00"},
                                                         {"application_id": "tz-2", "loan_status": 0, "observed_at": "2024-03-01T10:00:00"}]})
    assert r.status_code == 200 and r.json()["recorded"] == 2, r.text
    with contextlib.closing(sqlite3.connect(service.store)) as c:
        got = dict(c.execute("select application_id, observed_at from outcomes where application_id like 'tz-%'").fetchall())
    assert got["tz-1"].startswith("2024-03-01 08:00:00") and got["tz-2"].startswith("2024-03-01 10:00:00"), got      # UTC; no offset read as UTC
    with contextlib.closing(sqlite3.connect(service.store)) as c:
        assert c.execute("select loan_status from outcomes where application_id = 'tz-1'").fetchone() == (1,)

# ---------------------------------------------------------------- class 8, continued: a version that loads but cannot score; the alias deleted
UNSCORABLE = """
import json, sys, mlflow
from loan_default.inference import LoanDefaultModel, Scorer, carried_rows, self_check
class Unscorable:
    threshold, calibrator, citable, pipeline = 0.5, None, None, []
    def predict_proba(self, X): raise RuntimeError("cannot score")
    def explain(self, X, top_k=3): raise RuntimeError("cannot score")
class Wrapper(LoanDefaultModel):
    "The project's pyfunc, its CreditModel one that raises: its load self-checks it on the rows it carries, as every version's does."
    def load_context(self, context): self.model = Unscorable(); self.scorer = self_check(Scorer(self.model), carried_rows(context.artifacts))
open("check_rows.json", "w").write(json.dumps({"rows": [json.loads(sys.argv[1])]}))
with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="model", python_model=Wrapper(), artifacts={"check_rows": "check_rows.json"},
                                   registered_model_name=%r, pip_requirements=["mlflow"])
print(info.registered_model_version)
"""

@pytest.fixture(scope="module")
def unscorable_version(registry, row):
    "A version whose artifact loads, and whose model raises on every row (registered as __main__ code, so the service can unpickle it)."
    r = subprocess.run([sys.executable, "-c", UNSCORABLE % NAME, json.dumps(row)], capture_output=True, text=True, cwd=registry.folder, timeout=300,
                       env={**os.environ, "MLFLOW_TRACKING_URI": registry.uri})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip().splitlines()[-1]

def test_version_that_cannot_score_is_refused(service, registry, unscorable_version, row):
    from mlflow import MlflowClient
    client = MlflowClient(registry.uri)
    before, serving = client.get_model_version_by_alias(NAME, "production").version, requests.get(f"{service.url}/model", headers=H).json()["version"]
    client.set_registered_model_alias(NAME, "production", unscorable_version)
    try:
        r = requests.post(f"{service.url}/admin/reload", headers={"X-API-Key": ADMIN})
        assert r.status_code == 409 and r.json()["error"] == "reload_refused", r.text
        assert f"version {unscorable_version} fails its self-check" in r.json()["message"] and f"still serving version {serving}" in r.json()["message"]
        ready = requests.get(f"{service.url}/ready")
        assert ready.status_code == 200 and ready.json()["refused"]["version"] == unscorable_version, ready.text
        p = post(service.url, [row | {"application_id": "after-unscorable"}])
        assert p.status_code == 200 and p.json()["model"]["version"] == serving
        assert "after-unscorable" in on_disk(service.store)
    finally: client.set_registered_model_alias(NAME, "production", before)

def test_unscorable_version_at_start_is_not_ready(registry, unscorable_version, row, tmp_path):
    s = Service(tmp_path, registry, LD_SERVE_VERSION=unscorable_version)
    try:
        deadline = time.monotonic() + 60
        while "self-check" not in (r := requests.get(f"{s.url}/ready")).text and time.monotonic() < deadline: time.sleep(0.5)
        assert r.status_code == 503 and f"version {unscorable_version} fails its self-check" in r.json()["message"], r.text
        p = post(s.url, [row | {"application_id": "never"}])
        assert p.status_code == 503 and p.json()["error"] == "not_ready"
        assert "never" not in on_disk(s.store)
    finally: stop(s.proc)

def test_reload_with_alias_deleted_keeps_serving(service, registry, row):
    from mlflow import MlflowClient
    client = MlflowClient(registry.uri)
    before, serving = client.get_model_version_by_alias(NAME, "production").version, requests.get(f"{service.url}/model", headers=H).json()["version"]
    client.delete_registered_model_alias(NAME, "production")
    try:
        r = requests.post(f"{service.url}/admin/reload", headers={"X-API-Key": ADMIN})
        assert r.status_code == 409 and r.json()["error"] == "reload_refused" and f"still serving version {serving}" in r.json()["message"], r.text
        assert "no alias @production" in r.json()["message"]
        ready = requests.get(f"{service.url}/ready")
        assert ready.status_code == 200 and "no alias @production" in ready.json()["refused"]["reason"], ready.text
        p = post(service.url, [row | {"application_id": "alias-gone"}])
        assert p.status_code == 200 and p.json()["model"]["version"] == serving and "alias-gone" in on_disk(service.store)
    finally: client.set_registered_model_alias(NAME, "production", before)

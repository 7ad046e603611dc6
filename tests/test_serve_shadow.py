"""The shadow challenger (LD_SERVE_SHADOW_ALIAS) in a real service process (`loan-default serve` under uvicorn): every new
application gets one champion row in `predictions` and one shadow row in `shadow_predictions` with the same id, replays
add none; `loan-default compare --from-store` on that store finds the swap counts both versions give offline on the same
applications; moving @production swaps the champion and moving @staging the shadow; a shadow that cannot load, or whose
alias does not exist, costs no request and shows on /model and /metrics; shutdown drains the shadow's queue.

The registry is an embedded MLflow (SQLite) in a temporary folder with three versions of one model: 1 @production and
2 @staging (small models trained in seconds), and 3, which points to a missing artifact (it cannot load). The tests run
in file order; the last one stops the service. Every process is started here and stopped by PID."""
import json, os, sqlite3, sys, time
from pathlib import Path
import pytest, requests
from conftest import ROOT, stop, wait_for

sys.path.insert(0, str(ROOT / "benchmarks"))
from serve_bench import run_load, service_command, single_row_bodies, train_registered

NAME = "shadow-test"
KEY, ADMIN = "shadow-api-key-0123456789", "shadow-admin-key-987654321"
H, ADMIN_H = {"X-API-Key": KEY}, {"X-API-Key": ADMIN}

class Service:
    "`loan-default serve` with its own SQLite store, following `NAME`@production, with the shadow on `shadow_alias`."
    def __init__(self, folder: Path, uri: str, shadow_alias: str, **env):
        from conftest import free_port
        self.folder, self.port, self.store = folder, free_port(), folder / "predictions.db"
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"MLFLOW_TRACKING_URI": uri, "LD_MODEL_NAME": NAME, "LD_SERVE_POLL_S": "1", "LD_SERVE_SHADOW_ALIAS": shadow_alias,
               "LD_API_KEYS": KEY, "LD_ADMIN_KEY": ADMIN, "LD_PREDICTION_STORE": f"sqlite:///{self.store}", **env}
        import subprocess
        self.proc = subprocess.Popen(service_command("127.0.0.1", self.port), stdout=open(folder / "service.log", "a"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, **env}, cwd=folder)
        wait_for(f"{self.url}/ready", timeout=90, proc=self.proc)

    def model(self) -> dict: return requests.get(f"{self.url}/model", headers=H, timeout=10).json()

    def until(self, check, what: str, timeout: float = 30) -> dict:
        "Poll /model until `check(body)` holds."
        deadline = time.monotonic() + timeout
        while not check(body := self.model()):
            assert time.monotonic() < deadline, f"{what}: {body}"
            time.sleep(0.2)
        return body

    def settled(self) -> dict:
        "The shadow's counts once its queue is empty and nothing more arrives."
        last = None
        while (s := self.until(lambda b: b["shadow"]["queued"] == 0, "the shadow's queue empties")["shadow"]) != last: last = s; time.sleep(0.6)
        return s

    def rows(self, table: str) -> dict:
        with sqlite3.connect(self.store) as c:
            cols = "application_id, model_version" + (", model_alias, probability_of_default, predicted_default, decision" if table == "shadow_predictions" else "")
            return {r[0]: r[1:] for r in c.execute(f"select {cols} from {table}")}

    def predict(self, rows: list, **kw) -> dict:
        r = requests.post(f"{self.url}/predict", headers=H, json={"data": rows, **kw}, timeout=60)
        assert r.status_code == 200, r.text[:300]
        return r.json()

    def metric(self, name: str) -> float:
        text = requests.get(f"{self.url}/metrics", headers=H, timeout=10).text
        return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.rsplit(" ", 1)[0] == name)

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    "An embedded registry: 1 @production, 2 @staging, 3 unloadable (its artifact is missing)."
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder}/mlflow.db"
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    import mlflow
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    try:
        assert train_registered(folder, NAME, seeds=(1, 2)) == "1"
        client = mlflow.MlflowClient()
        assert str(client.get_model_version_by_alias(NAME, "staging").version) == "2"
        v1 = client.get_model_version(NAME, "1")
        assert str(client.create_model_version(NAME, source=str(folder / "no-such-model"), run_id=v1.run_id).version) == "3"
        yield uri, client
    finally:
        if before is None: os.environ.pop("MLFLOW_TRACKING_URI", None)
        else: os.environ["MLFLOW_TRACKING_URI"] = before

@pytest.fixture(scope="module")
def service(registry, tmp_path_factory):
    s = Service(tmp_path_factory.mktemp("shadowed"), registry[0], "staging")
    try:
        s.until(lambda b: b["shadow"]["state"] == "scoring", "the shadow loads")
        yield s
    finally: stop(s.proc)

@pytest.fixture(scope="module")
def applicants():
    return [json.loads(b)["data"][0] for b in single_row_bodies(400, seed=5)]

def _bodies(applicants, prefix: str, n: int) -> list[bytes]:
    return [json.dumps({"data": [applicants[i % len(applicants)] | {"application_id": f"{prefix}-{i}"}]}).encode() for i in range(n)]

def test_one_champion_row_and_one_shadow_row_per_application(service, applicants):
    info = service.model()
    assert (info["version"], info["shadow"]["alias"], info["shadow"]["version"], info["shadow"]["name"]) == ("1", "staging", "2", NAME), info
    load = run_load(f"{service.url}/predict", _bodies(applicants, "one", 300), concurrency=8, n=300, headers=H)     # single rows, concurrently
    assert load.statuses == {200: 300}, load.statuses
    batch = service.predict([a | {"application_id": f"batch-{i}"} for i, a in enumerate(applicants[:50])])
    replays = service.predict([a | {"application_id": f"batch-{i}"} for i, a in enumerate(applicants[:10])]
                              + [applicants[60] | {"application_id": "batch-new"}])                   # a batch mixing replays and a new row
    assert [p["replayed"] for p in replays["predictions"]] == [True] * 10 + [False]
    single_replay = service.predict([applicants[0] | {"application_id": "one-0"}])
    assert single_replay["predictions"][0]["replayed"]
    counts = service.settled()
    champion, shadow = service.rows("predictions"), service.rows("shadow_predictions")
    assert len(champion) == 300 + 50 + 1 and set(shadow) == set(champion), set(champion) ^ set(shadow)
    assert (counts["scored"], counts["failed"], counts["skipped"], counts["state"], counts["problem"]) == (351, 0, 0, "scoring", None)
    assert {v for v, in champion.values()} == {"1"} and {(v, a) for v, a, *_ in shadow.values()} == {("2", "staging")}
    # the shadow's own answers: version 2's probabilities and decisions at version 2's threshold
    from loan_default.inference import model_version
    from loan_default.serve import PredictRequest, applicant_columns
    v2 = model_version(NAME, version=2)
    ids = [f"batch-{i}" for i in range(50)]
    scored = v2.score(applicant_columns(PredictRequest.model_validate({"data": applicants[:50]}).data))
    assert [shadow[a][2] for a in ids] == pytest.approx(scored.probability.tolist(), rel=1e-9)
    assert [shadow[a][3] for a in ids] == scored.predicted.tolist()
    assert [shadow[a][4] for a in ids] == ["decline" if d else "approve" for d in scored.predicted.tolist()]
    assert [p["probability_of_default"] for p in batch["predictions"]] != [shadow[a][2] for a in ids]       # two different models
    assert service.metric('loan_default_shadow_rows_total{outcome="scored"}') == 351
    assert service.metric("loan_default_shadow_up") == 1 and service.metric("loan_default_shadow_model_version") == 2

def test_compare_on_the_live_store_finds_the_offline_swaps(service, registry, applicants, tmp_path):
    "What the service logged, read by `loan-default compare --from-store`: the swap counts both versions give offline on the same applications."
    from conftest import run_cli
    from loan_default.inference import model_version
    from loan_default.serve import PredictRequest, applicant_columns
    service.settled()
    by_id = {f"one-{i}": applicants[i % len(applicants)] for i in range(300)} | {f"batch-{i}": applicants[i] for i in range(50)}
    by_id["batch-new"] = applicants[60]
    assert set(by_id) == set(service.rows("shadow_predictions"))          # the previous test's applications, each in both tables
    columns = applicant_columns(PredictRequest.model_validate({"data": list(by_id.values())}).data)
    champion, challenger = (model_version(NAME, version=v).score(columns).predicted for v in (1, 2))
    offline = {"approve_to_decline": int(((champion == 0) & (challenger == 1)).sum()), "decline_to_approve": int(((champion == 1) & (challenger == 0)).sum())}
    r = run_cli("compare", "--from-store", f"sqlite:///{service.store}", "--no-log", "--out", tmp_path / "cmp", cwd=tmp_path,
                env={"MLFLOW_TRACKING_URI": registry[0], "LD_MODEL_NAME": NAME})
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert (report["rows"], report["champion"], report["challenger"]) == (len(by_id), "1", "2")
    assert {k: report["swap"][k] for k in offline} == offline, (report["swap"], offline)
    assert sum(offline.values()) > 0                                       # two different models: swaps to find

def test_moving_each_alias_swaps_the_right_model(service, registry, applicants):
    client = registry[1]
    def scored_by(prefix: str) -> tuple:
        service.predict([a | {"application_id": f"{prefix}-{i}"} for i, a in enumerate(applicants[:5])])
        service.predict([applicants[5] | {"application_id": f"{prefix}-single"}])
        service.settled()
        champion, shadow = service.rows("predictions"), service.rows("shadow_predictions")
        ids = [f"{prefix}-{i}" for i in range(5)] + [f"{prefix}-single"]
        return {champion[a][0] for a in ids}, {shadow[a][0] for a in ids if a in shadow}, sum(a in shadow for a in ids)
    try:
        client.set_registered_model_alias(NAME, "production", "2")                     # the poller (1 s) swaps the champion ...
        service.until(lambda b: b["version"] == "2", "@production moved to 2")
        assert scored_by("prod2") == ({"2"}, {"2"}, 6)                                  # ... and only the champion
        client.set_registered_model_alias(NAME, "staging", "1")
        service.until(lambda b: b["shadow"]["version"] == "1", "@staging moved to 1")
        assert scored_by("stag1") == ({"2"}, {"1"}, 6)
        client.set_registered_model_alias(NAME, "production", "1"); client.set_registered_model_alias(NAME, "staging", "2")
        r = requests.post(f"{service.url}/admin/reload", headers=ADMIN_H, timeout=60).json()      # both now (the poller may have been first)
        assert (r["model"]["version"], r["shadow"]["version"], r["shadow"]["state"]) == ("1", "2", "scoring"), r
        assert scored_by("back") == ({"1"}, {"2"}, 6)
        assert service.metric("loan_default_shadow_model_version") == 2 and service.metric("loan_default_model_version") == 1
    finally:
        client.set_registered_model_alias(NAME, "production", "1"); client.set_registered_model_alias(NAME, "staging", "2")

def test_a_broken_shadow_costs_no_request(service, registry, applicants, tmp_path):
    uri, client = registry
    rows = applicants[100:140]
    reference = service.predict([a | {"application_id": f"ref-{i}"} for i, a in enumerate(rows)], reasons="all")["predictions"]
    same = lambda answer: [{k: p[k] for k in ("probability_of_default", "decision", "reasons", "model_version")} for p in answer]
    # 1. @staging moves to a version that cannot load: refused, the loaded shadow (2) goes on scoring, answers unchanged
    client.set_registered_model_alias(NAME, "staging", "3")
    try:
        info = service.until(lambda b: "version 3 was refused" in (b["shadow"]["problem"] or ""), "version 3 refused")["shadow"]
        assert (info["version"], info["state"]) == ("2", "scoring"), info
        assert same(service.predict([a | {"application_id": f"refused-{i}"} for i, a in enumerate(rows)], reasons="all")["predictions"]) == same(reference)
        assert requests.get(f"{service.url}/ready", timeout=10).status_code == 200
        r = requests.post(f"{service.url}/admin/reload", headers=ADMIN_H, timeout=60)
        assert r.status_code == 200 and (r.json()["swapped"], r.json()["shadow"]["version"]) == (False, "2"), r.text
    finally:
        client.set_registered_model_alias(NAME, "staging", "2")
    # 2. a service whose shadow alias points to that version from the start, then to no version at all: no shadow model
    client.set_registered_model_alias(NAME, "broken", "3")
    broken = Service(tmp_path / "broken", uri, "broken")
    try:
        info = broken.until(lambda b: b["shadow"]["problem"] is not None and "version 3" in b["shadow"]["problem"], "the shadow refuses version 3")["shadow"]
        assert (info["state"], info["version"]) == ("unavailable", None) and "could not be loaded" in info["problem"], info
        load = run_load(f"{broken.url}/predict", _bodies(applicants, "brk", 100), concurrency=8, n=100, headers=H)
        assert load.statuses == {200: 100}, load.statuses
        assert same(broken.predict([a | {"application_id": f"brk-ref-{i}"} for i, a in enumerate(rows)], reasons="all")["predictions"]) == same(reference)
        client.delete_registered_model_alias(NAME, "broken")
        info = broken.until(lambda b: b["shadow"]["problem"] == f"model '{NAME}' has no alias @broken in the registry", "the alias is gone")["shadow"]
        assert same(broken.predict([a | {"application_id": f"brk-gone-{i}"} for i, a in enumerate(rows)], reasons="all")["predictions"]) == same(reference)
        assert requests.get(f"{broken.url}/ready", timeout=10).status_code == 200
        counts = broken.settled()
        assert (counts["state"], counts["scored"], counts["failed"], counts["skipped"]) == ("unavailable", 0, 180, 0), counts
        assert broken.metric("loan_default_shadow_up") == 0 and broken.metric('loan_default_shadow_rows_total{outcome="failed"}') == 180
        assert broken.metric("loan_default_shadow_model_version") == 0
        assert len(broken.rows("predictions")) == 180 and broken.rows("shadow_predictions") == {}
    finally:
        stop(broken.proc)

def test_shutdown_drains_the_shadow_queue(service, applicants):
    "Stopped right after a burst of requests, the service scores and stores what its shadow had queued before the store closes."
    load = run_load(f"{service.url}/predict", _bodies(applicants, "last", 200), concurrency=8, n=200, headers=H)
    assert load.statuses == {200: 200}
    stop(service.proc)
    champion, shadow = service.rows("predictions"), service.rows("shadow_predictions")
    assert {f"last-{i}" for i in range(200)} <= set(champion) and set(shadow) == set(champion), len(set(champion) - set(shadow))

"""Figures for the prediction service, beside `mlflow models serve` on the same registered model version.

    .venv/bin/python benchmarks/serve_bench.py --tracking-uri sqlite:////tmp/ld-real/mlflow.db    # a registry you have
    .venv/bin/python benchmarks/serve_bench.py                 # the model `loan-default pipeline` trains on the real file

The model measured is the one users get: `loan-default` @production as `loan-default pipeline` trains it on
../shared/data/credit_risk_dataset.csv (hundreds of trees; a toy model would hide what reasons and scoring cost).
Without --tracking-uri, that model is trained once into a cache folder (--cache, default ~/.cache/loan-default/bench)
and promoted; later runs reuse it. The run prints which version, run and data it measured.

Both servers run one uvicorn worker on loopback and are measured one after the other in the same run, with the same
single-row requests at the same concurrency. Ours answers with its default reasons ("declines": a declined row's 1-4
principal reasons, approvals none; --reasons picks another mode) and writes every row to its prediction log (SQLite,
WAL, synchronous=FULL: fsynced at every commit) before it responds; MLflow's answers with probabilities only and logs
nothing. Prints req/s, p50, p99 and the ratio, the targets of issue 12 (p99 <= 15 ms, >= 6x MLflow's req/s), the
version and run measured, and the machine's load average before and after (figures are only comparable on a quiet
machine); exits non-zero when a target is missed (use --no-check to only print).

    .venv/bin/python benchmarks/serve_bench.py --tracking-uri sqlite:////tmp/ld-real/mlflow.db --workers 2

`--workers N` (N > 1) also measures our service started with N uvicorn workers (`serve(workers=N)`), same requests,
printed beside the one-worker figure; the targets are checked on one worker.

    .venv/bin/python benchmarks/serve_bench.py --sync-compare --tracking-uri sqlite:////tmp/ld-real/mlflow.db --name loan-default

`--sync-compare` measures what durable commits cost instead: our service alone, started twice on the same model
with LD_SQLITE_SYNCHRONOUS=NORMAL and =FULL (the default: the write-ahead log is fsynced at every commit, so a
200 survives a power cut), alternating rounds of single-row requests with unique application ids, and prints
req/s, p50 and p99 for each, with the machine's load average (the figures are only comparable on a quiet machine).

    .venv/bin/python benchmarks/serve_bench.py --store-compare --tracking-uri sqlite:////tmp/ld-real/mlflow.db --name loan-default

`--store-compare` measures the prediction store instead: our service alone, started twice on the same model, its
store on SQLite (WAL, synchronous=FULL) and on PostgreSQL (a server of our own, started with benchmarks/procs.py in
a temporary folder, fsync on, synchronous_commit on: a 200 is committed on both), alternating rounds of single-row
requests with unique application ids; prints req/s, p50 and p99 for each and the ratio. Needs PostgreSQL installed.

    .venv/bin/python benchmarks/serve_bench.py --shadow-compare

`--shadow-compare` measures what the shadow challenger (LD_SERVE_SHADOW_ALIAS, issue 16) costs the caller: our service
alone, started twice on the same champion (@production), once without a shadow and once with LD_SERVE_SHADOW_ALIAS=staging,
alternating rounds of single-row requests with unique application ids (every request stores a new row, so every one is
also scored by the shadow); prints req/s, p50 and p99 of each, the p99 ratio (target: within 10%), and how many
champion rows got their shadow row. The shadow is the version @staging points to; a registry without @staging (the
default model has one version) is copied (SQLite) and @staging set on the @production version in the copy: then the
shadow is the same version under another alias, loaded a second time and scored in full.

`run_load` is the load generator the tests in tests/test_serve.py use too.
"""
import argparse, asyncio, json, os, subprocess, sys, tempfile, time
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
from procs import free_port, stop, wait_for
from real_model import add_arguments, describe_version, model_registry, production_version

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@dataclass
class LoadResult:
    "What a load run saw: requests per second, latency percentiles (ms), status counts, and optionally the parsed 200 bodies."
    requests: int
    seconds: float
    latencies_ms: np.ndarray
    statuses: dict
    bodies: list = field(default_factory=list, repr=False)
    sent: list = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float: return self.requests / self.seconds
    def pct(self, q) -> float: return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")
    @property
    def errors(self) -> int: return sum(n for s, n in self.statuses.items() if s != 200)
    def summary(self) -> str:
        return f"{self.requests:,} requests in {self.seconds:.1f} s: {self.rps:,.0f} req/s, p50 {self.pct(50):.1f} ms, p99 {self.pct(99):.1f} ms, statuses {self.statuses}"

async def _load(url, bodies, concurrency, n, duration, headers, keep, timeout, on_tick):
    import aiohttp
    lat, statuses, kept, sent = [], {}, [], []
    state = {"i": 0}
    deadline = time.perf_counter() + duration if duration else None
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=conn, headers={"content-type": "application/json", **(headers or {})},
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def worker():
            while (n is None or state["i"] < n) and (deadline is None or time.perf_counter() < deadline):
                i = state["i"]; state["i"] += 1
                body = bodies[i % len(bodies)]
                t = time.perf_counter()
                try:
                    async with session.post(url, data=body) as r:
                        raw = await r.read(); status = r.status
                except Exception as e:
                    raw, status = None, type(e).__name__
                lat.append((time.perf_counter() - t) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if keep: sent.append((i, status)); kept.append((time.perf_counter(), json.loads(raw)) if status == 200 else None)
                if on_tick: on_tick(i, status)
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        dt = time.perf_counter() - t0
    return LoadResult(len(lat), dt, np.array(lat), statuses, kept, sent)

def run_load(url: str, bodies: list[bytes], concurrency: int = 8, n: int | None = None, duration: float | None = None,
             headers: dict | None = None, keep: bool = False, timeout: float = 30, on_tick=None) -> LoadResult:
    "POST `bodies` (cycled) to `url` from `concurrency` connections, `n` requests or for `duration` seconds."
    return asyncio.run(_load(url, bodies, concurrency, n, duration, headers, keep, timeout, on_tick))

def single_row_bodies(n: int = 2000, seed: int = 11, wrap=lambda rows: {"data": rows}) -> list[bytes]:
    "One-row request bodies from clean synthetic applications."
    from loan_default.synth import synthesize
    from loan_default.schema import FEATURES
    rows = json.loads(synthesize(n, seed=seed, dirty=False)[FEATURES].to_json(orient="records"))
    return [json.dumps(wrap([r])).encode() for r in rows]

def start(cmd: list, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)

def service_command(host: str, port: int, workers: int = 1) -> list:
    "How the tests and this script start the service: the console script the Dockerfile runs (N workers: `serve(workers=N)` directly)."
    if workers > 1: return [sys.executable, "-c", f"from loan_default.serve import serve; serve({host!r}, {port}, workers={workers})"]
    return [str(Path(sys.executable).parent / "loan-default"), "serve", "--host", host, "--port", str(port)]

def train_registered(folder: Path, name: str, seeds=(1,), rows: int = 3000, time_budget_s: float = 3) -> str:
    "For tests that need a model in seconds, not for figures: train on synthetic data and register one version per seed in the registry of MLFLOW_TRACKING_URI; @production -> the first. Returns its version."
    import mlflow
    from loan_default.synth import synthesize
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register, promote
    experiment = f"{name}-bench"
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=(folder / "artifacts").as_uri()
                                 if mlflow.get_tracking_uri().startswith("sqlite") else None)
    first = None
    for seed in seeds:
        result = train_model(synthesize(rows, seed=seed, dirty=False), time_budget_s=time_budget_s, seed=seed)
        run = log_training(result, folder / "synthetic.csv", experiment=experiment)
        reg = register(run.run_id, name, experiment, min_f1=0.3, min_roc_auc=0.7, tolerance=1.0)
        if first is None: promote(name); first = reg.version
    return first

def unique_id_bodies(n: int, prefix: str) -> list[bytes]:
    "Single-row bodies, each with its own application_id (every request stores a new row: no replays)."
    return [json.dumps({"data": [json.loads(b)["data"][0] | {"application_id": f"{prefix}-{i}"}]}).encode()
            for i, b in enumerate(single_row_bodies(n))]

def compare_services(uri: str, name: str, alias: str, tmp: Path, variants: dict, requests_per_round: int, rounds: int, concurrency: int) -> dict:
    "Our service once per variant ({label: extra env}) side by side: alternating rounds, each with fresh ids; pooled figures per variant."
    servers = {}
    for mode, extra in variants.items():
        port, tag = free_port(), "".join(ch for ch in mode.lower() if ch.isalnum())
        env = {"MLFLOW_TRACKING_URI": uri, "LD_MODEL_NAME": name, "LD_SERVE_ALIAS": alias, "LD_API_KEYS": "bench-key", **extra}
        servers[mode] = (start(service_command("127.0.0.1", port), env, tmp / f"ours-{tag}.log"), f"http://127.0.0.1:{port}")
    key, out = {"X-API-Key": "bench-key"}, {m: [] for m in servers}
    try:
        for proc, url in servers.values(): wait_for(f"{url}/ready", timeout=120, proc=proc)
        for mode, (_, url) in servers.items(): run_load(f"{url}/predict", unique_id_bodies(500, f"warm-{mode}"), concurrency, n=500, headers=key)
        for r in range(rounds):
            for mode, (_, url) in servers.items():
                bodies = unique_id_bodies(requests_per_round, f"r{r}-{mode}")
                out[mode].append(run_load(f"{url}/predict", bodies, concurrency, n=requests_per_round, headers=key))
    finally:
        for proc, _ in servers.values(): stop(proc)
    return {m: LoadResult(sum(x.requests for x in rs), sum(x.seconds for x in rs), np.concatenate([x.latencies_ms for x in rs]),
                          {k: sum(x.statuses.get(k, 0) for x in rs) for x in rs for k in x.statuses}) for m, rs in out.items()}

def sync_compare(uri: str, name: str, alias: str, tmp: Path, requests_per_round: int, rounds: int, concurrency: int) -> dict:
    "Our service with synchronous=NORMAL and =FULL side by side."
    variants = {mode: {"LD_PREDICTION_STORE": f"sqlite:///{tmp}/predictions-{mode.lower()}.db", "LD_SQLITE_SYNCHRONOUS": mode} for mode in ("NORMAL", "FULL")}
    return compare_services(uri, name, alias, tmp, variants, requests_per_round, rounds, concurrency)

def store_compare(uri: str, name: str, alias: str, tmp: Path, requests_per_round: int, rounds: int, concurrency: int) -> dict:
    "Our service with its store on SQLite (WAL, synchronous=FULL) and on a PostgreSQL server of our own (procs.Postgres, fsync on), side by side."
    from procs import Postgres
    server = Postgres(tempfile.mkdtemp(prefix="ld-pg-bench-")).start()       # under /tmp: the postgres user must reach it
    try:
        variants = {"SQLite": {"LD_PREDICTION_STORE": f"sqlite:///{tmp}/predictions.db"},
                    "PostgreSQL": {"LD_PREDICTION_STORE": server.create_database("bench_predictions")}}
        return compare_services(uri, name, alias, tmp, variants, requests_per_round, rounds, concurrency)
    finally:
        import shutil
        server.stop(); shutil.rmtree(server.root, ignore_errors=True)

def shadow_registry(uri: str, name: str, alias: str, tmp: Path) -> tuple[str, str]:
    "A registry where @staging names the shadow: `uri` when it has one, else a copy of a SQLite `uri` with @staging on the @`alias` version; and what the shadow is."
    from mlflow import MlflowClient
    champion, staging = production_version(uri, name, alias), production_version(uri, name, "staging")
    if staging is not None: return uri, f"version {staging.version} (@staging) beside version {champion.version} (@{alias})"
    if not uri.startswith("sqlite:///"): sys.exit(f"error: '{name}' has no @staging in {uri}: set one (the shadow's version) or give a SQLite registry")
    import shutil
    copy = tmp / "mlflow-shadow.db"
    shutil.copyfile(uri.removeprefix("sqlite:///"), copy)
    copy_uri = f"sqlite:///{copy}"
    MlflowClient(tracking_uri=copy_uri, registry_uri=copy_uri).set_registered_model_alias(name, "staging", champion.version)
    return copy_uri, f"version {champion.version} under @staging too (the same version as @{alias}, loaded and scored a second time), in a copy of {uri}"

def shadow_compare(uri: str, name: str, alias: str, tmp: Path, requests_per_round: int, rounds: int, concurrency: int) -> tuple[dict, int, int]:
    "Our service without and with a shadow (@staging) side by side; the figures, and how many champion rows the shadow-on store holds and how many shadow rows."
    import sqlite3
    variants = {"shadow-off": {"LD_PREDICTION_STORE": f"sqlite:///{tmp}/predictions-off.db"},
                "shadow-on": {"LD_PREDICTION_STORE": f"sqlite:///{tmp}/predictions-on.db", "LD_SERVE_SHADOW_ALIAS": "staging"}}
    res = compare_services(uri, name, alias, tmp, variants, requests_per_round, rounds, concurrency)
    with sqlite3.connect(tmp / "predictions-on.db") as c:       # the service has stopped: its shadow queue was drained first
        return res, c.execute("select count(*) from predictions").fetchone()[0], c.execute("select count(*) from shadow_predictions").fetchone()[0]

def _all_workers_ready(url: str, workers: int, proc, timeout: float = 300) -> None:
    "Wait until /ready is 200 on 20 new connections a worker in a row: the kernel spreads connections over the workers, each loading the model on its own."
    wait_for(f"{url}/ready", timeout=timeout, proc=proc)
    import requests
    deadline, ok = time.monotonic() + timeout, 0
    while ok < 20 * workers and time.monotonic() < deadline:
        ok = ok + 1 if requests.get(f"{url}/ready", timeout=10).status_code == 200 else 0
        if not ok: time.sleep(0.5)

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--requests", type=int, default=4000, help="single-row requests per server")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--big-requests", type=int, default=20, help="1,000-row requests")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--sync-compare", action="store_true", help="compare LD_SQLITE_SYNCHRONOUS=NORMAL and FULL on our service instead")
    ap.add_argument("--store-compare", action="store_true", help="compare the prediction store on SQLite and on PostgreSQL (a server of our own) instead")
    ap.add_argument("--shadow-compare", action="store_true", help="compare our service without and with a shadow challenger (LD_SERVE_SHADOW_ALIAS) instead")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode for --sync-compare, --store-compare and --shadow-compare")
    ap.add_argument("--workers", type=int, default=1, help="also measure our service with this many uvicorn workers (when > 1)")
    ap.add_argument("--reasons", default=None, choices=["declines", "all", "none"], help="reasons mode of our requests [default: the service's, declines]")
    a = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    uri = model_registry(a)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    print(describe_version(uri, a.name, a.alias), flush=True)
    version = production_version(uri, a.name, a.alias).version
    if a.sync_compare:
        load_before = os.getloadavg()
        res = sync_compare(uri, a.name, a.alias, tmp, a.requests, a.rounds, a.concurrency)
        load_after = os.getloadavg()
        print(f"\nprediction log durability, 1-row requests with new application ids, {a.concurrency} connections, "
              f"{a.rounds} alternating rounds of {a.requests:,} each; {os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
        for mode, r in res.items(): print(f"  synchronous={mode:6s} {r.summary()}")
        cost = 1 - res["FULL"].rps / res["NORMAL"].rps
        print(f"  FULL costs {cost:.1%} of NORMAL's req/s; p99 {res['NORMAL'].pct(99):.1f} -> {res['FULL'].pct(99):.1f} ms")
        return 0 if a.no_check or all(r.errors == 0 for r in res.values()) else 1
    if a.shadow_compare:
        shadow_uri, shadow_is = shadow_registry(uri, a.name, a.alias, tmp)
        load_before = os.getloadavg()
        res, champion_rows, shadow_rows = shadow_compare(shadow_uri, a.name, a.alias, tmp, a.requests, a.rounds, a.concurrency)
        load_after = os.getloadavg()
        off, on = res["shadow-off"], res["shadow-on"]
        ratio = on.pct(99) / off.pct(99)
        print(f"\nshadow challenger, 1-row requests with new application ids, {a.concurrency} connections, {a.rounds} alternating rounds "
              f"of {a.requests:,} each; {os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
        print(f"  champion version {version} (@{a.alias}); shadow: {shadow_is}")
        for mode, r in res.items(): print(f"  {mode:10s} {r.summary()}")
        print(f"  with / without shadow: p99 {off.pct(99):.2f} -> {on.pct(99):.2f} ms ({ratio:.3f}x), p50 {off.pct(50):.2f} -> {on.pct(50):.2f} ms, "
              f"req/s {on.rps / off.rps:.3f}x; shadow rows {shadow_rows:,} of {champion_rows:,} champion rows")
        checks = [(f"p99 with shadow {ratio:.3f}x without", ratio <= 1.10), (f"every champion row has its shadow row ({shadow_rows:,} / {champion_rows:,})",
                  shadow_rows == champion_rows), (f"no errors ({off.errors + on.errors})", off.errors + on.errors == 0)]
        print("\ntargets (issue 16): 1-row p99 with the shadow within 10% of without, 8 connections, same run")
        for text, ok in checks: print(f"  {'PASS' if ok else 'MISS'}  {text}")
        return 0 if a.no_check or all(ok for _, ok in checks) else 1
    if a.store_compare:
        load_before = os.getloadavg()
        res = store_compare(uri, a.name, a.alias, tmp, a.requests, a.rounds, a.concurrency)
        load_after = os.getloadavg()
        print(f"\nprediction store, 1-row requests with new application ids, {a.concurrency} connections, {a.rounds} alternating rounds "
              f"of {a.requests:,} each; {os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
        for store, r in res.items(): print(f"  {store:10s} {r.summary()}")
        print(f"  PostgreSQL / SQLite: {res['PostgreSQL'].rps / res['SQLite'].rps:.2f}x req/s; "
              f"p99 {res['SQLite'].pct(99):.1f} -> {res['PostgreSQL'].pct(99):.1f} ms")
        return 0 if a.no_check or all(r.errors == 0 for r in res.values()) else 1

    ours_port, theirs_port, many_port = free_port(), free_port(), free_port()
    env = {"MLFLOW_TRACKING_URI": uri, "LD_MODEL_NAME": a.name, "LD_SERVE_ALIAS": a.alias,
           "LD_PREDICTION_STORE": f"sqlite:///{tmp}/predictions.db", "LD_API_KEYS": "bench-key"}
    ours = start(service_command("127.0.0.1", ours_port), env, tmp / "ours.log")
    many = start(service_command("127.0.0.1", many_port, a.workers), env | {"LD_PREDICTION_STORE": f"sqlite:///{tmp}/predictions-{a.workers}w.db"},
                 tmp / "ours-workers.log") if a.workers > 1 else None
    theirs = start([str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{a.name}/{version}", "-h", "127.0.0.1",
                    "-p", str(theirs_port), "-w", "1", "--env-manager", "local"],
                   {"MLFLOW_TRACKING_URI": uri, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}, tmp / "mlflow.log")
    try:
        wait_for(f"http://127.0.0.1:{ours_port}/ready", timeout=120, proc=ours)
        wait_for(f"http://127.0.0.1:{theirs_port}/ping", timeout=120, proc=theirs)
        if many: _all_workers_ready(f"http://127.0.0.1:{many_port}", a.workers, many)
        key = {"X-API-Key": "bench-key"}
        mode = (lambda rows: {"data": rows, "reasons": a.reasons}) if a.reasons else (lambda rows: {"data": rows})
        ours_bodies = single_row_bodies(wrap=mode)
        theirs_bodies = single_row_bodies(wrap=lambda rows: {"dataframe_records": rows})
        results, load_before = {}, os.getloadavg()
        runs = [("mlflow models serve", f"http://127.0.0.1:{theirs_port}/invocations", theirs_bodies, {}),
                ("loan_default.serve", f"http://127.0.0.1:{ours_port}/predict", ours_bodies, key)]
        if many: runs.append((f"loan_default.serve {a.workers}w", f"http://127.0.0.1:{many_port}/predict", ours_bodies, key))
        for label, url, bodies, headers in runs:
            run_load(url, bodies, a.concurrency, n=500, headers=headers)                      # warm up
            results[label] = r = run_load(url, bodies, a.concurrency, n=a.requests, headers=headers)
            print(f"{label:22s} 1-row, {a.concurrency} connections: {r.summary()}", flush=True)
        big = json.dumps({"data": [json.loads(b)["data"][0] for b in ours_bodies[:1000]]}).encode()
        run_load(f"http://127.0.0.1:{ours_port}/predict", [big], 1, n=3, headers=key)
        rb = run_load(f"http://127.0.0.1:{ours_port}/predict", [big], 1, n=a.big_requests, headers=key)
        load_after = os.getloadavg()
        print(f"{'loan_default.serve':22s} 1,000-row, reasons {a.reasons or 'declines'}: {rb.summary()}")
        ours_r, theirs_r = results["loan_default.serve"], results["mlflow models serve"]
        ratio = ours_r.rps / theirs_r.rps
        print(f"\nmodel {a.name} version {version}; ours 1 worker, reasons {a.reasons or 'declines'} (default), prediction log on "
              f"(SQLite WAL, synchronous FULL); {os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
        print(f"ours / mlflow models serve: {ratio:.2f}x req/s; p50 {ours_r.pct(50):.1f} vs {theirs_r.pct(50):.1f} ms, p99 {ours_r.pct(99):.1f} vs {theirs_r.pct(99):.1f} ms")
        if many: print(f"{a.workers} workers / 1 worker: {results[runs[-1][0]].rps / ours_r.rps:.2f}x req/s")
        errors = sum(r.errors for r in results.values()) + rb.errors
        checks = [(f"throughput {ratio:.2f}x mlflow models serve", ratio >= 6),
                  (f"1-row p99 {ours_r.pct(99):.1f} ms", ours_r.pct(99) <= 15),
                  (f"no errors ({errors})", errors == 0)]
        print("\ntargets (issue 12): 1-row p99 <= 15 ms and >= 6x mlflow models serve's req/s, on 1 worker, zero errors")
        for text, ok in checks: print(f"  {'PASS' if ok else 'MISS'}  {text}")
        return 0 if a.no_check or all(ok for _, ok in checks) else 1
    finally:
        stop(ours); stop(theirs)
        if many: stop(many)

if __name__ == "__main__":
    sys.exit(main())

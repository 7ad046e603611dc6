"""Time `loan-default drift --from-store` on prediction stores of 100k and 1M predictions (more with --sizes), on SQLite and on PostgreSQL.

The stores hold real rows: the applications of ../shared/data (those the data contract accepts), scored by the model
`loan-default pipeline` trains on that file (see real_model.py), repeated with new application ids to the size wanted
and spread over 60 days; a third of them have their real outcome. They are written straight into the service's tables
(`loan_default.serve`'s schema) in bulk: executemany on SQLite, COPY on PostgreSQL (our own server, procs.Postgres).

Each drift run is its own process (the console script, --no-log); we print its seconds, its CPU seconds and its peak
memory (VmHWM, the child's peak resident set, as wait4 reports it), per size and backend, and from its report.json the
seconds of reading and counting and of each step. Usage:
    .venv/bin/python benchmarks/store_drift_bench.py [--sizes 100000 1000000 3000000] [--backends sqlite postgres]

Measured 2026-12-01 (one run, the 2-core machine shared with other jobs), model loan-default version 1, 20,000-row
chunks, drift counting chunk by chunk (`drift.store_counts`):
    sqlite     100,000: 15.8 s (CPU  10.0 s), peak 671 MiB     postgres   100,000: 17.5 s (CPU  10.5 s), peak 694 MiB
    sqlite   1,000,000: 45.0 s (CPU  40.5 s), peak 626 MiB     postgres 1,000,000: 51.6 s (CPU  42.0 s), peak 629 MiB
    sqlite   3,000,000: 83.7 s (CPU 117.1 s), peak 713 MiB     postgres 3,000,000: 96.9 s (CPU 118.7 s), peak 729 MiB
Memory is flat in the window; only the labelled rows the bootstrap needs (24 bytes each) grow it. Time is linear, about
35 s of CPU per million predictions (PostgreSQL's own CPU not counted). Before, when drift kept every parsed chunk and
counted one frame of the window: sqlite 100k 18.6 s / 666 MiB, 1M 48.1 s / 953 MiB; postgres 100k 21.5 s / 672 MiB,
1M 86.6 s / 1,016 MiB. About 280 MiB of the peak is the command itself (imports, the model, its reference rows).
"""
import argparse, json, os, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_model import BIN, add_arguments, describe_version, model_registry
from procs import Postgres
from stores import build_store, run_timed, stored_time

DAYS = 60
OUTCOME_SHARE = 1 / 3

def scored_rows(data: Path, uri: str, name: str, alias: str) -> tuple[pd.DataFrame, object]:
    "The real file's rows the contract accepts, with the registered version's probability and decision."
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from loan_default.schema import FEATURES, TARGET, coerce, check_rows
    from loan_default.inference import model_version, model_columns, decision_text
    raw = pd.read_csv(data)
    typed, unreadable = coerce(raw)
    ok = ~check_rows(typed[FEATURES], {c: unreadable[c] for c in FEATURES}).any(axis=1).to_numpy()
    rows = typed.loc[ok].sample(frac=1, random_state=0).reset_index(drop=True)    # the file is in no random order: every window a fair sample
    mv = model_version(name, alias)
    p = np.asarray(mv.score(model_columns(rows[FEATURES])).probability, dtype="float64")
    predicted = (p >= mv.threshold).astype("int64")
    return rows.assign(probability_of_default=p, predicted_default=predicted, decision=decision_text(predicted)), mv

def _inputs(rows: pd.DataFrame) -> list[str]:
    "Each row's applicant fields as the service stores them: a JSON object, missing values null."
    from loan_default.schema import FEATURES
    return [json.dumps(r) for r in json.loads(rows[FEATURES].to_json(orient="records"))]

def store_batches(rows: pd.DataFrame, mv, n: int, zoned: bool = False, batch: int = 100_000):
    "`n` predictions (and a third of their outcomes) in batches: the real rows repeated, new ids, spread over `DAYS` days; times as the backend takes them."
    from loan_default.schema import TARGET
    inputs, start = _inputs(rows), pd.Timestamp("2026-09-01", tz="UTC")
    step, recorded = pd.Timedelta(days=DAYS) / n, stored_time(start + pd.Timedelta(days=DAYS + 90), zoned)
    for lo in range(0, n, batch):
        i = np.arange(lo, min(n, lo + batch)); k = i % len(rows)
        at = [stored_time(start + step * int(j), zoned) for j in i]
        preds = [(f"app-{j}", f"req-{j}", t, mv.name, str(mv.version), float(rows.probability_of_default[r]), int(rows.predicted_default[r]),
                  str(rows.decision[r]), inputs[r]) for j, r, t in zip(i, k, at)]
        known = i[(i % 3) == 0]
        yield {"predictions": preds, "outcomes": [(f"app-{j}", int(rows[TARGET][j % len(rows)]), None, recorded) for j in known]}

def run_drift(url: str, uri: str, out: Path) -> dict:
    "`loan-default drift --from-store` in its own process: seconds, CPU seconds, peak memory (MiB), exit code, its summary line, and from its report the seconds of reading and counting and of each step."
    r = run_timed([BIN / "loan-default", "drift", "--from-store", url, "--no-log", "--out", out], out.with_suffix(".log"), {**os.environ, "MLFLOW_TRACKING_URI": uri})
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    return r | dict(said=r["said"][:160], counting_s=report.get("seconds"), steps=report.get("timings"))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="predictions per store")
    ap.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    ap.add_argument("--work", type=Path, default=None, help="folder for the stores and reports [default: a temporary one]")
    a = ap.parse_args()
    uri = model_registry(a)
    print(describe_version(uri, a.name, a.alias), flush=True)
    rows, mv = scored_rows(a.data, uri, a.name, a.alias)
    print(f"{len(rows):,} real rows the contract accepts, scored by {mv}", flush=True)
    work = a.work or Path(tempfile.mkdtemp(prefix="ld-store-drift-"))
    pg = Postgres(tempfile.mkdtemp(prefix="ld-pg-")).start() if "postgres" in a.backends else None
    results = []
    try:
        for n in a.sizes:
            for backend in a.backends:
                t = time.perf_counter()
                url = build_store(backend, f"store_{n}", work, pg, store_batches(rows, mv, n, zoned=backend == "postgres"))
                built = time.perf_counter() - t
                r = run_drift(url, uri, work / f"drift-{backend}-{n}") | dict(backend=backend, predictions=n, build_s=round(built, 1))
                results.append(r)
                print(f"{backend:8} {n:>9,} predictions: drift --from-store {r['seconds']:7.1f} s (CPU {r['cpu_s']:.1f} s; reading and counting {r['counting_s'] or 0:.1f} s), "
                      f"peak {r['peak_mib']:6,} MiB (exit {r['exit']}; store built in {r['build_s']} s)  | {r['said']}", flush=True)
    finally:                                           # the stores are throwaway: a 1M store is ~1.3 GB on PostgreSQL
        if pg is not None: pg.stop(); shutil.rmtree(pg.root, ignore_errors=True)
        if a.work is None: shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))

if __name__ == "__main__":
    main()

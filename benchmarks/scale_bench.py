"""Batch scoring on the model users get: `loan-default score` end to end beside the bare LightGBM booster on the same rows.

    .venv/bin/python benchmarks/scale_bench.py [--tracking-uri URI] [--rows 1000000 5000000] [--spark] [--work /tmp/ld-scale-bench]
        [--cluster 2 | --master spark://HOST:PORT]

The model is `loan-default` @production as `loan-default pipeline` trains it on the real file (see real_model.py). The
rows are the real file's rows that the contract accepts, drawn with replacement to each size and written once as
parquet in --work. For each size, one after the other on an otherwise idle machine, it prints:

- `pandas`: the console script `loan-default score --engine pandas` in its own process, end to end (start-up, resolve
  the version, load and self-check the model, read, score in chunks, write parquet): wall time and the process's peak
  resident memory.
- `booster`: a process that loads the same version, reads the parquet whole, builds the model matrix
  (`features.model_matrix`) and calls `booster.predict`: the least any engine can do. Wall time, peak memory, and the
  split into loading and scoring.
- the ratio of the two wall times (the issue's target: at most 1.5).
- with --spark: `loan-default score --engine spark` (local[*]) end to end, its rows/s, and the largest difference
  between its probabilities and the pandas engine's, row by row.
- with --cluster N: starts a Spark standalone cluster of its own (benchmarks/procs.py `SparkCluster`: a master and N
  workers of 1 core on 127.0.0.1, stopped at the end) and runs `loan-default score --engine spark --master spark://...`
  on it; with --master URL, the same on a cluster already running. The rows and outputs are in --work, which the run
  declares shared (`LD_SPARK_SHARED_PATHS`): true on one machine; on a real cluster put --work on a mount every node has.
- with --reasons: `loan-default score --reasons` (pandas; principal reasons for every decline, TreeSHAP on those rows
  only) end to end, its rows/s against issue 12's target (at least 10,000 rows/s), and how many rows were declined.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from real_model import add_arguments, describe_version, model_registry, production_version

BIN = Path(sys.executable).parent

BOOSTER = """
import json, sys, time
t0 = time.perf_counter()
import mlflow, pyarrow.parquet as pq
from loan_default.schema import COLUMN, FEATURES
from loan_default.features import model_matrix
uri, name, version, path = sys.argv[1:]
mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
booster = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().model.pipeline[-1].booster_
t1 = time.perf_counter()
df = pq.read_table(path).to_pandas()
M = model_matrix({c: df[c].to_numpy("float64") if COLUMN[c].numeric else df[c].to_numpy(object) for c in FEATURES})
p = booster.predict(M)
print(json.dumps(dict(start_and_load_s=t1 - t0, score_s=time.perf_counter() - t1, rows=len(p))))
"""

def bench_rows(n: int, data: Path, work: Path) -> Path:
    "A parquet file of `n` contract-clean rows of the real file, drawn with replacement (made once)."
    from loan_default.validate import validate_file
    from loan_default.schema import FEATURES
    out = work / f"rows_{n}.parquet"
    if out.exists(): return out
    clean = work / "validated" / "clean.parquet"
    if not clean.exists(): validate_file(data, work / "validated")
    base = pd.read_parquet(clean)[FEATURES] if clean.exists() else pd.read_csv(work / "validated" / "clean.csv")[FEATURES]
    base.sample(n, replace=True, random_state=0).reset_index(drop=True).to_parquet(out, index=False, row_group_size=100_000)
    return out

# A small launcher runs each measured command and reports that command's peak memory: measured from this process, the
# figure would include our own memory (a forked child starts as a copy of its parent, and Linux counts that copy).
LAUNCH = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""

def run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    "Run `cmd`: (wall seconds, peak resident MiB of that command, its stdout); exits with its stderr when it fails."
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, tempfile.NamedTemporaryFile("r") as peak:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", LAUNCH, peak.name, *map(str, cmd)], env=env, stdout=out, stderr=err, text=True)
        wall = time.perf_counter() - start
        out.seek(0); err.seek(0)
        if proc.returncode: sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {err.read().strip()[-800:]}")
        return wall, int(peak.read() or "nan") / 1024, out.read()

def score_cli(engine: str, rows: Path, out: Path, env: dict, name: str, reasons: bool = False, master: str = "local[*]") -> tuple[float, float]:
    "`loan-default score` end to end (the spark engine on `master`): (wall seconds, peak MiB)."
    extra = (["--master", master] if engine == "spark" else []) + (["--reasons"] if reasons else [])
    wall, peak, _ = run([str(BIN / "loan-default"), "score", "--data", str(rows), "--out", str(out), "--engine", engine, "--model", name, *extra], env)
    return wall, peak

def largest_difference(a: Path, b: Path) -> float:
    "The largest |p_a - p_b| over the rows of two score outputs, matched by application_id."
    from loan_default.inference import ID, SCORE
    pa_, pb = pd.read_parquet(a, columns=[ID, SCORE]).set_index(ID), pd.read_parquet(b, columns=[ID, SCORE]).set_index(ID)
    if len(pa_) != len(pb): return float("inf")
    return float(np.max(np.abs(pa_[SCORE].to_numpy() - pb.loc[pa_.index, SCORE].to_numpy())))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--spark", action="store_true", help="also score with the spark engine (local[*]) and compare")
    ap.add_argument("--reasons", action="store_true", help="also score with principal reasons for the declines (pandas)")
    ap.add_argument("--cluster", type=int, default=None, metavar="N", help="also score on a standalone cluster of N workers x 1 core that this run starts")
    ap.add_argument("--worker-memory", default="2g", help="each --cluster worker's memory")
    ap.add_argument("--master", default=None, help="also score on this running Spark cluster (spark://host:port)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ld-scale-bench")
    a = ap.parse_args()
    if a.cluster is not None and a.master: ap.error("--cluster starts a cluster, --master uses a running one: give one of them")
    if a.cluster is not None and a.cluster < 1: ap.error("--cluster needs 1 or more workers")
    uri = model_registry(a)
    print(describe_version(uri, a.name, a.alias), flush=True)
    version = str(production_version(uri, a.name, a.alias).version)
    a.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "LD_SPARK_SHARED_PATHS": str(a.work.resolve())}
    cluster = None
    if a.cluster:
        from procs import SparkCluster
        cluster = SparkCluster(tempfile.mkdtemp(prefix="ld-spark-bench-"), workers=a.cluster, cores=1, memory=a.worker_memory).start()
        print(f"standalone cluster {cluster.master}: {a.cluster} workers x 1 core, {a.worker_memory} each", flush=True)
    try: _measure(a, uri, version, env, cluster.master if cluster else a.master)
    finally:
        if cluster:
            cluster.stop()
            import shutil; shutil.rmtree(cluster.root, ignore_errors=True)

def _measure(a, uri: str, version: str, env: dict, master: str | None):
    "The table: for each size, the booster, the pandas engine and the engines asked for."
    print(f"{'rows':>10} {'engine':>8} {'wall s':>8} {'rows/s':>9} {'peak MiB':>9}  notes", flush=True)
    for n in a.rows:
        rows = bench_rows(n, a.data, a.work)
        bw, bpeak, bout = run([sys.executable, "-c", BOOSTER, uri, a.name, version, str(rows)], env)
        split = json.loads(bout)
        print(f"{n:>10,} {'booster':>8} {bw:>8.1f} {n / bw:>9,.0f} {bpeak:>9,.0f}  start+load {split['start_and_load_s']:.1f} s, "
              f"read+matrix+predict {split['score_s']:.1f} s", flush=True)
        pw, ppeak = score_cli("pandas", rows, a.work / f"pandas_{n}.parquet", env, a.name)
        print(f"{n:>10,} {'pandas':>8} {pw:>8.1f} {n / pw:>9,.0f} {ppeak:>9,.0f}  {pw / bw:.2f}x the booster (target <= 1.5)", flush=True)
        if a.reasons:
            out = a.work / f"reasons_{n}.parquet"
            rw, rpeak = score_cli("pandas", rows, out, env, a.name, reasons=True)
            from loan_default.inference import DECISION
            declined = int((pd.read_parquet(out, columns=[DECISION])[DECISION] == 1).sum())
            print(f"{n:>10,} {'reasons':>8} {rw:>8.1f} {n / rw:>9,.0f} {rpeak:>9,.0f}  {declined:,} declines explained "
                  f"({n / rw:,.0f} rows/s, target >= 10,000)", flush=True)
        if a.spark:
            sw, _ = score_cli("spark", rows, a.work / f"spark_{n}", env, a.name)
            diff = largest_difference(a.work / f"pandas_{n}.parquet", a.work / f"spark_{n}")
            print(f"{n:>10,} {'spark':>8} {sw:>8.1f} {n / sw:>9,.0f} {'-':>9}  local[*]; largest |p_spark - p_pandas| {diff:.1e}", flush=True)
        if master:
            cw, _ = score_cli("spark", rows, a.work / f"cluster_{n}", env, a.name, master=master)
            diff = largest_difference(a.work / f"pandas_{n}.parquet", a.work / f"cluster_{n}")
            print(f"{n:>10,} {'cluster':>8} {cw:>8.1f} {n / cw:>9,.0f} {'-':>9}  {master}; largest |p_cluster - p_pandas| {diff:.1e}", flush=True)

if __name__ == "__main__": main()

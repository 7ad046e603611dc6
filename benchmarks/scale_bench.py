"""Rows per second of batch scoring (and of drift) on the pandas engine and the Spark engine, at 1M and 5M rows, and
how each grows with rows: `loan_default.scale.score_command` end to end (read parquet, score with the registered
model, write parquet), timed after Spark has started (the JVM start-up, ~5-10 s, is printed separately).

    .venv/bin/python benchmarks/scale_bench.py [--rows 1000000 5000000] [--master local[*]] [--drift] [--keep DIR]

A tiny model is trained on synthetic rows and registered in a temporary MLflow; the rows are synthetic
(`loan_default.synth`, 1M generated once and tiled), written once as parquet (and CSV with --csv). "growth" is the
ratio of seconds at the largest row count to seconds at the smallest, over the ratio of rows: 1.0 is linear, below
1 means fixed costs are being amortised. The machine may be shared: figures vary from run to run.
"""
import argparse, os, shutil, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd

def setup_model(folder: Path):
    import mlflow
    from loan_default.synth import synthesize
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register, promote
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.create_experiment("scale-bench", artifact_location=str(folder / "artifacts"))
    trained = train_model(synthesize(3000, seed=1, dirty=False), time_budget_s=3)
    logged = log_training(trained, "synthetic.csv", experiment="scale-bench")
    register(logged.run_id, experiment="scale-bench", min_f1=0.3, min_roc_auc=0.7); promote()

def write_rows(n: int, base: pd.DataFrame, path: Path, csv: bool) -> dict:
    reps = -(-n // len(base))
    df = pd.concat([base] * reps, ignore_index=True).iloc[:n]
    out = dict(parquet=path.with_suffix(".parquet"))
    df.to_parquet(out["parquet"], index=False, row_group_size=250_000)
    if csv: out["csv"] = path.with_suffix(".csv"); df.to_csv(out["csv"], index=False)
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    ap.add_argument("--drift", action="store_true", help="also time drift (pandas drift_command vs drift_command_spark)")
    ap.add_argument("--csv", action="store_true", help="also time CSV input")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    a = ap.parse_args()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    from loan_default.synth import synthesize
    from loan_default import scale, drift_spark
    from loan_default.drift import drift_command
    setup_model(folder)
    base = synthesize(min(max(a.rows), 1_000_000), seed=5, dirty=False)
    t = time.perf_counter(); spark = scale.spark_session(a.master)
    print(f"Spark session on {a.master}: {time.perf_counter() - t:.1f} s (not counted below); {os.cpu_count()} cores; shared machine")
    results = []
    for n in sorted(a.rows):
        files = write_rows(n, base, folder / f"rows_{n}", a.csv)
        for kind, path in files.items():
            for engine in ("pandas", "spark"):
                out = folder / f"out_{engine}_{kind}_{n}"
                r = scale.score_command(path, out if engine == "spark" else out.with_suffix(".parquet"), engine=engine,
                                        spark=spark if engine == "spark" else None, chunk_rows=a.chunk_rows, progress=False)
                results.append(dict(task="score", input=kind, engine=engine, rows=n, seconds=r.seconds, rows_per_s=r.rows / r.seconds))
                print(f"score {kind:7s} {engine:6s} {n:>10,} rows: {r.seconds:7.1f} s  {r.rows / r.seconds:>10,.0f} rows/s", flush=True)
                shutil.rmtree(out, ignore_errors=True); out.with_suffix(".parquet").unlink(missing_ok=True)
            if a.drift and kind == "parquet":
                for engine in ("pandas", "spark"):
                    t = time.perf_counter()
                    if engine == "pandas": drift_command(current=path, out=folder / "drift_p", log=False)
                    else: drift_spark.drift_command_spark(path, out=folder / "drift_s", spark=spark, log=False)
                    s = time.perf_counter() - t
                    results.append(dict(task="drift", input=kind, engine=engine, rows=n, seconds=s, rows_per_s=n / s))
                    print(f"drift {kind:7s} {engine:6s} {n:>10,} rows: {s:7.1f} s  {n / s:>10,.0f} rows/s", flush=True)
        for p in files.values(): p.unlink(missing_ok=True)
    df = pd.DataFrame(results)
    print("\n" + df.to_string(index=False, float_format=lambda x: f"{x:,.1f}"))
    lo, hi = min(a.rows), max(a.rows)
    if hi > lo:
        print(f"\ngrowth from {lo:,} to {hi:,} rows (seconds ratio / rows ratio; 1.0 = linear):")
        for (task, kind, engine), g in df.groupby(["task", "input", "engine"]):
            s = g.set_index("rows").seconds
            print(f"  {task} {kind} {engine}: {s[hi] / s[lo]:.2f}x time for {hi / lo:.0f}x rows -> {(s[hi] / s[lo]) / (hi / lo):.2f}")
    spark.stop()
    if not a.keep: shutil.rmtree(folder, ignore_errors=True)

if __name__ == "__main__":
    main()

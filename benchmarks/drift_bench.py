"""Time drift monitoring on 100k, 1M and 5M scored rows (as the prediction store holds them: applicant columns,
probability_of_default, scored_at, no outcomes yet): PSI for every feature and the score, data quality, the p-chart and
the expected performance, i.e. `drift_report` without writing files. The issue's figure: <= 3 s for 1M rows, linear.

    .venv/bin/python benchmarks/drift_bench.py --tracking-uri sqlite:////tmp/ld-real/mlflow.db [--rows 100000 1000000 5000000]
                                               [--repeat 3] [--with-outcomes] [--evidently /tmp/evidently-venv/bin/python]

The model is the one users get (see real_model.py): `loan-default` @production as `loan-default pipeline` trains it on
the real file; without --tracking-uri it is trained once into a cache folder. The report is measured against that
version's own reference profile (its `reference_profile.json`) and its threshold. The current rows are synthetic
(`loan_default.synth`, dirty, at most 1M generated once and tiled), scored once by that model.

`--evidently PYTHON` also times Evidently's `DataDriftPreset(method="psi")` in its own interpreter (Evidently 0.7 needs
pandas<3: see NOTES.md), on 30,000 rows of the real file (scored by the model) as its reference and the same current
rows, and prints the ratio of its time to ours. Evidently bins numeric columns on the pooled data (Sturges), and our
reference is the model's training split rather than those rows: only categorical PSI is roughly comparable.
"""
import argparse, json, subprocess, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from loan_default.drift import drift_report, feature_counts, psi_table, quality_table, p_chart, chunks_by_size, default_chunk_size, Thresholds
from loan_default.profile import load_profile
from loan_default.schema import FEATURES
from loan_default.synth import synthesize
from real_model import add_arguments, describe_version, model_registry, production_version

def registered_model(uri: str, name: str, alias: str):
    "(the version's model, with `predict_proba` and `threshold`; its reference profile), from the registry at `uri`."
    import mlflow
    from mlflow import MlflowClient
    from loan_default.store import quiet_downloads
    mv = production_version(uri, name, alias)
    with tempfile.TemporaryDirectory() as d, quiet_downloads():
        profile = load_profile(MlflowClient(tracking_uri=uri, registry_uri=uri).download_artifacts(mv.run_id, "reference_profile.json", d))
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    with quiet_downloads(): return mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}").unwrap_python_model().model, profile

def scored_rows(n: int, base: pd.DataFrame) -> pd.DataFrame:
    "`n` rows tiled from `base`, with scores and one prediction a second."
    reps = -(-n // len(base))
    df = pd.concat([base] * reps, ignore_index=True).iloc[:n] if reps > 1 else base.iloc[:n].reset_index(drop=True)
    return df.assign(scored_at=pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"))

def best_of(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
    return min(times)

EVIDENTLY_SCRIPT = '''
import json, sys, time
import pandas as pd
from evidently import Dataset, DataDefinition, Report
from evidently.presets import DataDriftPreset
folder, num, cat = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ref, cur = pd.read_parquet(f"{folder}/reference.parquet"), pd.read_parquet(f"{folder}/current.parquet")
start = time.perf_counter()
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
snap = Report([DataDriftPreset(method="psi")]).run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
seconds = time.perf_counter() - start
psi = {}
for m in snap.dict()["metrics"]:
    cfg = m.get("config") or {}
    col = cfg.get("column") or (cfg.get("params") or {}).get("column")
    if col and isinstance(m.get("value"), (int, float)): psi[col] = m["value"]
print(json.dumps(dict(seconds=seconds, psi=psi)))
'''

def evidently_psi(python: str, ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    "Evidently's PSI preset on `ref` vs `cur`, run by interpreter `python`: {seconds, psi per column}."
    from loan_default.schema import NUMERIC_FEATURES, CATEGORICAL_FEATURES
    cols = NUMERIC_FEATURES + CATEGORICAL_FEATURES + ["probability_of_default"]
    with tempfile.TemporaryDirectory() as d:
        ref[cols].to_parquet(f"{d}/reference.parquet"); cur[cols].to_parquet(f"{d}/current.parquet")
        Path(d, "ev.py").write_text(EVIDENTLY_SCRIPT)
        out = subprocess.run([python, f"{d}/ev.py", d, json.dumps(NUMERIC_FEATURES + ["probability_of_default"]), json.dumps(CATEGORICAL_FEATURES)],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-outcomes", action="store_true", help="keep loan_status: adds bootstrap performance per chunk")
    ap.add_argument("--evidently", metavar="PYTHON", default=None, help="an interpreter with evidently 0.7 and pandas<3")
    a = ap.parse_args()
    uri = model_registry(a)
    print(describe_version(uri, a.name, a.alias), flush=True)
    model, profile = registered_model(uri, a.name, a.alias)
    start = time.perf_counter()
    base = synthesize(min(max(a.rows), 1_000_000), seed=1, dirty=True)
    generated = time.perf_counter() - start
    base = base.assign(probability_of_default=model.predict_proba(base[FEATURES]))
    if not a.with_outcomes: base = base.drop(columns="loan_status")
    print(f"generated {len(base):,} base rows in {generated:.1f} s, scored by the model in {time.perf_counter() - start - generated:.1f} s; "
          f"threshold {model.threshold:.3f}; best of {a.repeat}")
    ref = pd.read_csv(a.data).sample(30_000, random_state=0) if a.evidently else None
    if ref is not None: ref = ref.assign(probability_of_default=model.predict_proba(ref[FEATURES]))
    print(f"{'rows':>10} {'report s':>9} {'us/row':>7} {'PSI+DQ s':>9} {'p-chart s':>9}  status")
    th = Thresholds()
    for n in a.rows:
        df = scored_rows(n, base)
        report = {}
        def run(): report.update(drift_report(df, profile, threshold=model.threshold, th=th))
        total = best_of(run, a.repeat)
        X = df
        psi_dq = best_of(lambda: quality_table(profile, X, c := feature_counts(profile, X, X["probability_of_default"]), th) is not None
                         and psi_table(profile, c, th), a.repeat)
        codes = chunks_by_size(n, default_chunk_size(n))
        chart = best_of(lambda: p_chart(df["probability_of_default"].to_numpy(), codes, profile["score"]["mean"]), a.repeat)
        print(f"{n:>10,} {total:>9.3f} {1e6 * total / n:>7.2f} {psi_dq:>9.3f} {chart:>9.3f}  {report['status']} "
              f"(max PSI {max(report['psi'].values()):.3f}, {len(report['control_chart']['points'])} chunks; {'; '.join(report['reasons'])[:90]})")
        if a.evidently:
            ev = evidently_psi(a.evidently, ref, df)
            same = {c: (round(report["psi"][c], 5), round(ev["psi"].get(c, float("nan")), 5)) for c in ["loan_grade", "loan_intent"]}
            print(f"{'':>10} Evidently PSI preset: {ev['seconds']:.3f} s = {ev['seconds'] / total:.1f}x our whole report "
                  f"({ev['seconds'] / psi_dq:.1f}x our PSI + data quality); categorical PSI ours vs theirs: {same}")
        del df

if __name__ == "__main__":
    main()

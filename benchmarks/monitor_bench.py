"""Time the whole monitoring timeline report beside NannyML 0.13.1 on the same scored rows and the same chunks of 10,000.

    .venv/bin/python benchmarks/monitor_bench.py --tracking-uri sqlite:////tmp/ld-real/mlflow.db [--rows 1000000] [--repeat 3]
                                                 [--nannyml /tmp/nannyml-venv/bin/python] [--reference test|sample]

The model is the one users get (see real_model.py): `loan-default` @production as `loan-default pipeline` trains it on
the real file; without --tracking-uri it is trained once into a cache folder. The current rows are synthetic
(`loan_default.synth`, dirty, at most 1M generated once and tiled), scored once by that model, one a second, no outcomes.
The reference rows are the version's own test split (`--reference test`, held out from training, labelled) or 10,000
rows of the real file (`--reference sample`, as NOTES.md's NannyML figure used; most of them were trained on), scored
by the model.

Ours: `drift_report(current, profile, threshold, chunk_size=10_000, reference=<reference rows>)` in this process, best
of --repeat. NannyML, in its own interpreter (`--nannyml`, a venv with `nannyml==0.13.1 statsmodels`; its usage
logging is always disabled) on the same rows through parquet files: `UnivariateDriftCalculator` (Jensen-Shannon, the
12 features and the score), `CBPE` (roc_auc and f1; y_pred is the score at the model's threshold; y_true on the
reference) and `DataReconstructionDriftCalculator` (the 12 features), each fitted on the reference and run on the
current rows, best of --repeat each. Peak RSS: each side in a fresh process that reads the same files (ours runs the
report once more there). Then each chunk's expected ROC AUC and F1 of ours against NannyML's CBPE estimate, as NannyML
gives it (it recalibrates the scores on the reference when it judges that helps) and with the scores as they are.
"""
import argparse, inspect, json, os, subprocess, sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
from loan_default.drift import drift_report, check_current
from loan_default.schema import FEATURES, CATEGORICAL_FEATURES, TARGET
from loan_default.synth import synthesize
from real_model import add_arguments, describe_version, model_registry, production_version
from drift_bench import registered_model, scored_rows, best_of

SCORE, PRED, TIME, CHUNK = "probability_of_default", "predicted_default", "scored_at", 10_000

def run_split(uri: str, run_id: str, name: str) -> pd.DataFrame | None:
    "The split `name` ('test', 'train') training run `run_id` logged as data/<name>.parquet, None when it logged none."
    from mlflow import MlflowClient
    from loan_default.store import quiet_downloads
    with tempfile.TemporaryDirectory() as d, quiet_downloads():
        try: return pd.read_parquet(MlflowClient(tracking_uri=uri, registry_uri=uri).download_artifacts(run_id, f"data/{name}.parquet", d))
        except Exception: return None

def reference_rows(a, uri: str, model) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    "The reference rows (features, outcome, score), the rows the model has seen (for the overlap check) and what they are."
    if a.reference == "test":
        run_id = production_version(uri, a.name, a.alias).run_id
        ref, train = run_split(uri, run_id, "test"), run_split(uri, run_id, "train")
        if ref is None: sys.exit(f"error: run {run_id} logged no test split: use --reference sample")
        seen = pd.concat([x[FEATURES] for x in (train, ref) if x is not None], ignore_index=True)
        source = f"the test split of {a.name}@{a.alias} (run {run_id})"
    else:
        ref, seen, source = check_current(pd.read_csv(a.data).sample(10_000, random_state=0), time_col=None).frame, None, f"10,000 rows of {a.data}"
    ref = ref[FEATURES + [TARGET]].reset_index(drop=True)
    return ref.assign(**{SCORE: model.predict_proba(ref[FEATURES])}), seen, source

def takes_reference() -> bool:
    "Whether this checkout's drift_report takes reference rows (the timeline's levels, segments and multivariate drift)."
    return "reference" in inspect.signature(drift_report).parameters

def prepared(profile: dict, threshold: float, ref: pd.DataFrame, seen: pd.DataFrame | None = None, source: str = ""):
    "The reference rows as the report takes them (`timeline.baseline`: slots, score bins, PCA fitted, seen rows' keys)."
    from loan_default.timeline import baseline
    return baseline(profile, ref[FEATURES], ref[SCORE].to_numpy(), threshold, ref[TARGET].to_numpy("float64"), source=source, seen=seen,
                    seen_what="its training and test splits" if seen is not None else "")

def our_report(df: pd.DataFrame, profile: dict, threshold: float, ref: pd.DataFrame, seen: pd.DataFrame | None = None, source: str = "") -> dict:
    "Our whole report, the reference rows prepared inside it as the CLI does on every run."
    if not takes_reference(): return drift_report(df, profile, threshold, chunk_size=CHUNK)
    return drift_report(df, profile, threshold, chunk_size=CHUNK, reference=prepared(profile, threshold, ref, seen, source))

# Peak RSS is the process's own high-water mark (VmHWM): getrusage's ru_maxrss carries the parent's peak across fork and
# exec on Linux, so a child started by a 0.4 GB parent reports at least 0.4 GB whatever it does.
PEAK = '''
def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"): return int(line.split()[1])
'''

OURS_SCRIPT = PEAK + '''
import json, sys, time
import pandas as pd
sys.path.insert(0, sys.argv[2])
from monitor_bench import our_report
folder = sys.argv[1]
meta = json.load(open(f"{folder}/meta.json"))
cur = pd.read_parquet(f"{folder}/current.parquet").drop(columns=meta["pred"])
ref = pd.read_parquet(f"{folder}/reference.parquet")[meta["features"] + [meta["target"], meta["score"]]]
seen = pd.read_parquet(f"{folder}/seen.parquet") if meta["seen"] else None
loaded = peak_kib()
start = time.perf_counter()
our_report(cur, meta["profile"], meta["threshold"], ref, seen, meta["source"])
print(json.dumps(dict(seconds=time.perf_counter() - start, rss_loaded=loaded, rss_peak=peak_kib())))
'''

NANNYML_SCRIPT = PEAK + '''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
folder = sys.argv[1]
m = json.load(open(f"{folder}/meta.json"))
cur, ref = pd.read_parquet(f"{folder}/current.parquet"), pd.read_parquet(f"{folder}/reference.parquet")
loaded = peak_kib()
common = dict(timestamp_column_name=m["time"], chunk_size=m["chunk"])
def timed(make, repeat=m["repeat"]):
    "Best of `repeat`: a fresh calculator fitted on the reference and run on the current rows (CBPE estimates, the others calculate)."
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        calc = make().fit(ref)
        result = calc.estimate(cur) if hasattr(calc, "estimate") else calc.calculate(cur)
        best = min(best, time.perf_counter() - start)
    return best, calc, result
seconds = {}
seconds["univariate"], _, uni = timed(lambda: nml.UnivariateDriftCalculator(column_names=m["features"] + [m["score"]], treat_as_categorical=m["categorical"],
        continuous_methods=["jensen_shannon"], categorical_methods=["jensen_shannon"], **common))
seconds["cbpe"], cbpe, est = timed(lambda: nml.CBPE(problem_type="classification_binary", y_pred_proba=m["score"], y_pred=m["pred"], y_true=m["target"],
        metrics=["roc_auc", "f1"], **common))
seconds["reconstruction"], _, rec = timed(lambda: nml.DataReconstructionDriftCalculator(column_names=m["features"], **common))
peak = peak_kib()
# Not timed in the ratio: CBPE again with the scores taken as they are (no isotonic recalibration on the reference), as ours takes them.
from nannyml.calibration import NoopCalibrator
seconds_raw, _, raw = timed(lambda: nml.CBPE(problem_type="classification_binary", y_pred_proba=m["score"], y_pred=m["pred"], y_true=m["target"],
        metrics=["roc_auc", "f1"], calibrator=NoopCalibrator(), **common), 1)
e, w = est.filter(period="analysis").to_df(), raw.filter(period="analysis").to_df()
chunks = [dict(start_index=int(s), end_index=int(t), roc_auc=float(a), f1=float(f), roc_auc_raw=float(ar), f1_raw=float(fr))
          for s, t, a, f, ar, fr in zip(e[("chunk", "start_index")], e[("chunk", "end_index")], e[("roc_auc", "value")], e[("f1", "value")],
                                        w[("roc_auc", "value")], w[("f1", "value")])]
u = uni.filter(period="analysis").to_df()
alerts = {c: int(u[(c, "jensen_shannon", "alert")].sum()) for c in m["features"] + [m["score"]]}
r = rec.filter(period="analysis").to_df()
print(json.dumps(dict(seconds=seconds, seconds_raw=seconds_raw, rss_loaded=loaded, rss_peak=peak, chunks=chunks, drift_alerts=alerts,
                      reference_chunks=len(est.filter(period="reference").to_df()),
                      reconstruction_alerts=int(r[("reconstruction_error", "alert")].sum()), needs_calibration=bool(getattr(cbpe, "needs_calibration", False)))))
'''

def write_inputs(folder: str, df: pd.DataFrame, ref: pd.DataFrame, seen: pd.DataFrame | None, source: str, profile: dict, threshold: float,
                 repeat: int) -> None:
    "The rows both sides read (current without outcomes, reference with them; y_pred at the threshold) and what else they need."
    cols = FEATURES + [SCORE]
    with_pred = lambda d: d.assign(**{PRED: (d[SCORE] >= threshold).astype("int64")})
    with_pred(df[cols + [TIME]]).to_parquet(f"{folder}/current.parquet")
    # NannyML needs a timestamp on the reference too when it is given one: the reference's rows come a day before the current ones.
    at = pd.date_range(df[TIME].iloc[0] - pd.Timedelta(days=1), periods=len(ref), freq="s")
    with_pred(ref[cols + [TARGET]].assign(**{TARGET: ref[TARGET].astype("int64"), TIME: at})).to_parquet(f"{folder}/reference.parquet")
    if seen is not None: seen.to_parquet(f"{folder}/seen.parquet")
    meta = dict(seen=seen is not None, source=source, profile=profile, threshold=threshold, features=FEATURES, categorical=CATEGORICAL_FEATURES,
                score=SCORE, pred=PRED, target=TARGET, time=TIME, chunk=CHUNK, repeat=repeat)
    Path(folder, "meta.json").write_text(json.dumps(meta))

def run_json(cmd: list, env: dict | None = None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode: sys.exit(f"error: {cmd[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

def gb(kib: int) -> str: return f"{kib / 2**20:.2f} GB"

def our_chunks(report: dict) -> list[dict]:
    "Per chunk of our report: first row, rows, expected ROC AUC (None before the timeline) and expected F1."
    if "timeline" in report:
        rows = [c["rows"] for c in report["timeline"]]
        exp = [c.get("expected") or {} for c in report["timeline"]]
    else:
        rows = [c["n"] for c in report["performance"]["expected"]["chunks"]]
        exp = [dict(roc_auc=None, f1=c["expected_f1"]) for c in report["performance"]["expected"]["chunks"]]
    starts = np.cumsum([0] + rows[:-1])
    return [dict(start_index=int(s), rows=n, roc_auc=e.get("roc_auc"), f1=e.get("f1")) for s, n, e in zip(starts, rows, exp)]

def compare(ours: list[dict], theirs: list[dict], metric: str, key: str, what: str, tolerance: float = 0.01) -> None:
    "Max and mean absolute difference of `metric` per chunk of the same rows, against NannyML's `key`, and the chunks off by more than `tolerance`."
    by_start = {c["start_index"]: c for c in theirs}
    pairs = [(o, by_start[o["start_index"]]) for o in ours
             if o["start_index"] in by_start and by_start[o["start_index"]]["end_index"] - o["start_index"] + 1 == o["rows"] and o[metric] is not None]
    if not pairs: print(f"  expected {metric}: no chunk of ours to compare (no per-chunk {metric} in this report)"); return
    diff = np.array([o[metric] - t[key] for o, t in pairs])
    off = [(i, o, t) for i, ((o, t), d) in enumerate(zip(pairs, diff)) if abs(d) > tolerance]
    print(f"  expected {metric}, ours - NannyML CBPE {what} over {len(pairs)} chunks (of {len(ours)} ours, {len(theirs)} theirs): "
          f"max |diff| {np.abs(diff).max():.2g}, mean |diff| {np.abs(diff).mean():.2g}, mean diff {diff.mean():+.2g}; "
          f"{len(off)} chunks off by more than {tolerance}")
    for i, o, t in off[:20]: print(f"    chunk {i} (rows {o['start_index']:,}..): ours {o[metric]:.4f}, NannyML {t[key]:.4f}")
    if len(off) > 20: print(f"    ... and {len(off) - 20} more")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--nannyml", metavar="PYTHON", default="/tmp/nannyml-venv/bin/python", help="an interpreter with nannyml 0.13.1 and statsmodels")
    ap.add_argument("--reference", choices=["test", "sample"], default="test", help="the version's test split, or 10,000 rows of the real file")
    a = ap.parse_args()
    uri = model_registry(a)
    print(describe_version(uri, a.name, a.alias), flush=True)
    model, profile = registered_model(uri, a.name, a.alias)
    ref, seen, source = reference_rows(a, uri, model)
    base = synthesize(min(a.rows, 1_000_000), seed=1, dirty=True).drop(columns=TARGET)
    base = base.assign(**{SCORE: model.predict_proba(base[FEATURES])})
    df = scored_rows(a.rows, base)
    del base
    print(f"{a.rows:,} current rows, reference: {source} "
          f"({len(ref):,} rows, default rate {ref[TARGET].mean():.3f}), threshold {model.threshold:.3f}, chunks of {CHUNK:,}"
          f"{'' if takes_reference() else '; this drift_report takes no reference rows yet: timed without them'}", flush=True)

    report = {}
    def run(): report.update(our_report(df, profile, model.threshold, ref, seen, source))
    ours = best_of(run, a.repeat)
    chunks = our_chunks(report)
    drifted = sum(len(c.get("drifted") or []) for c in report.get("timeline", []))
    print(f"ours:    {report['rows']:,} rows, {len(chunks)} chunks, whole report {ours:.3f} s (best of {a.repeat}), status {report['status']}"
          f"{f', {drifted} of {13 * len(chunks)} column-chunks drifted' if 'timeline' in report else ''}")
    if takes_reference():
        prep = best_of(lambda: prepared(profile, model.threshold, ref, seen, source), a.repeat)
        print(f"         of which preparing the reference rows (timeline.baseline, {len(ref):,} rows, {0 if seen is None else len(seen):,} seen rows' keys): {prep:.3f} s")
    if report.get("timings"): print(f"         timings: {json.dumps(report['timings'])}")
    if report.get("timings"):
        t = report["timings"]
        part = sum(t.get(k, 0.0) for k in ("timeline counts", "segments", "overlap", "report"))
        print(f"         the timeline itself (chunk counts with multivariate, segments, overlap, judging and summary; rows already checked "
              f"and scored): {part:.3f} s; reading the rows through the data contract: {t.get('check', 0.0):.3f} s")

    checked = check_current(df).frame                        # the rows our report compares, in its order: NannyML gets exactly these
    with tempfile.TemporaryDirectory() as d:
        write_inputs(d, checked, ref, seen, source, profile, model.threshold, a.repeat)
        Path(d, "ours.py").write_text(OURS_SCRIPT); Path(d, "nml.py").write_text(NANNYML_SCRIPT)
        fresh = run_json([sys.executable, f"{d}/ours.py", d, str(Path(__file__).resolve().parent)])
        nml = run_json([a.nannyml, f"{d}/nml.py", d], env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"})
    s = nml["seconds"]
    uni_cbpe, total = s["univariate"] + s["cbpe"], sum(s.values())
    print(f"         peak RSS {gb(fresh['rss_peak'])} in a fresh process ({gb(fresh['rss_loaded'])} after reading the rows; one run there {fresh['seconds']:.3f} s)")
    print(f"NannyML: {len(nml['chunks'])} chunks, univariate drift (Jensen-Shannon, 13 columns) {s['univariate']:.3f} s, CBPE (roc_auc, f1) {s['cbpe']:.3f} s, "
          f"reconstruction drift {s['reconstruction']:.3f} s: {total:.3f} s in all (each best of {a.repeat}, fit on the reference included)")
    print(f"         peak RSS {gb(nml['rss_peak'])} ({gb(nml['rss_loaded'])} after reading the rows); CBPE recalibrated the scores on the reference: "
          f"{nml['needs_calibration']}; chunks alerting: reconstruction {nml['reconstruction_alerts']}, "
          f"Jensen-Shannon {sum(nml['drift_alerts'].values())} of {13 * len(nml['chunks'])} column-chunks; the reference made {nml['reference_chunks']} chunk(s)")
    print(f"ratio (theirs / ours): univariate drift + CBPE {uni_cbpe / ours:.1f}x, everything {total / ours:.1f}x")
    print(f"per chunk (NannyML CBPE again with the scores as they are, NoopCalibrator: {nml['seconds_raw']:.3f} s, not in the ratio):")
    for metric in ("roc_auc", "f1"):
        if all(c[metric] is None for c in chunks): print(f"  expected {metric}: none per chunk in our report (no timeline yet)"); continue
        compare(chunks, nml["chunks"], metric, metric, "(default: isotonic recalibration when it judges it needed)")
        compare(chunks, nml["chunks"], metric, f"{metric}_raw", "(scores as they are)")

if __name__ == "__main__":
    main()

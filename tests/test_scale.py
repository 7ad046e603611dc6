"""The Spark engine against the pandas engine on the same 100,000 rows: the same probabilities and decisions (to 1e-9;
in fact bit for bit), the same PSI values and the same drift report; bad input (missing columns, an unreadable file,
a value that is not a number, a master URL that does not answer) fails fast with one line.

Spark runs in local[2]. Without pyspark these tests are skipped, unless LD_REQUIRE_SPARK=1 (CI), which makes that a failure."""
import json, os, socket, time
import numpy as np, pandas as pd
import pytest

from conftest import skip_without_spark
skip_without_spark()

import mlflow
from loan_default.schema import DataError, FEATURES, TARGET
from loan_default.synth import synthesize
from loan_default import scale, drift_spark
from loan_default.drift import drift_command, SCORE, DECISION

ROWS = 100_000

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    "A tiny model trained on synthetic rows, registered and promoted to @production in a temporary MLflow."
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register, promote
    d = tmp_path_factory.mktemp("mlflow")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{d}/mlflow.db"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.create_experiment("scale-test", artifact_location=str(d / "artifacts"))
    trained = train_model(synthesize(3000, seed=1, dirty=False), time_budget_s=3)
    logged = log_training(trained, "synthetic.csv", experiment="scale-test")
    register(logged.run_id, experiment="scale-test", min_f1=0.3, min_roc_auc=0.7); promote()
    trained.tracking_uri = f"sqlite:///{d}/mlflow.db"
    yield trained
    if before is None: os.environ.pop("MLFLOW_TRACKING_URI", None)
    else: os.environ["MLFLOW_TRACKING_URI"] = before

@pytest.fixture(scope="module")
def spark():
    s = scale.spark_session("local[2]")
    yield s
    s.stop()

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "100,000 synthetic rows with missing employment lengths and interest rates and outcomes, as parquet and as CSV."
    d = tmp_path_factory.mktemp("data")
    df = synthesize(ROWS, seed=11, dirty=False)
    df.loc[::17, "person_emp_length"] = np.nan
    df.loc[::23, "loan_int_rate"] = np.nan
    df.to_parquet(d / "rows.parquet", index=False)
    df.to_csv(d / "rows.csv", index=False)
    return dict(df=df, parquet=d / "rows.parquet", csv=d / "rows.csv", dir=d)

def _by_id(path) -> pd.DataFrame:
    out = pd.read_parquet(path)
    return out.assign(_n=out.application_id.astype("int64")).sort_values("_n").reset_index(drop=True)

@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_same_probabilities(registry, spark, data, kind, tmp_path):
    "Both engines, same file: same row ids, probabilities equal to 1e-9 (bit for bit in practice), same decisions."
    a = scale.score_command(data[kind], tmp_path / "pandas.parquet", engine="pandas", progress=False)
    b = scale.score_command(data[kind], tmp_path / "spark", engine="spark", spark=spark)
    assert a.rows == b.rows == ROWS
    A, B = _by_id(a.out), _by_id(b.out)
    assert (A.application_id == B.application_id).all() and A._n.tolist() == list(range(ROWS))
    np.testing.assert_allclose(A[SCORE], B[SCORE], rtol=0, atol=1e-9)
    assert (A[DECISION] == B[DECISION]).all() and (A.decision == B.decision).all()
    np.testing.assert_allclose(A[SCORE], registry.model.predict_proba(data["df"][FEATURES]), rtol=0, atol=1e-12)
    print(f"\n{kind}: max |pandas - spark| = {np.abs(A[SCORE] - B[SCORE]).max():.3g}; {a.message}; {b.message}")

@pytest.mark.parametrize("mode", [True, "all"])
def test_same_reasons(registry, spark, data, tmp_path, mode):
    "Reasons (JSON text of catalogue reasons: code, feature, text, points, kind) agree between the engines, in both reason modes."
    small = data["df"].head(3000).assign(application_id=lambda d: [f"a{i}" for i in range(len(d))])
    small.to_parquet(tmp_path / "small.parquet", index=False)
    a = scale.score_command(tmp_path / "small.parquet", tmp_path / "p.parquet", reasons=mode, progress=False)
    b = scale.score_command(tmp_path / "small.parquet", tmp_path / "s", engine="spark", reasons=mode, spark=spark)
    A, B = pd.read_parquet(a.out).set_index("application_id"), pd.read_parquet(b.out).set_index("application_id").loc[small.application_id]
    ra, rb = A.reasons.map(json.loads), B.reasons.map(json.loads)
    assert (ra == rb).all()                                             # same codes, texts, points and kinds
    declined = A.decision == "decline"
    assert declined.sum() > 0 and all(1 <= len(r) <= 4 for r in ra[declined])
    if mode is True: assert all(r == [] for r in ra[~declined])         # approvals carry no reasons by default
    else: assert all(x["kind"] == "risk_factor" for r in ra[~declined] for x in r) and ra[~declined].map(len).gt(0).any()

def test_same_drift_report(registry, spark, data, tmp_path):
    "drift on Spark (aggregations) and on pandas, same 100,000 rows with outcomes: same PSI (to 1e-9), quality, chart, performance."
    sp = drift_command(data["parquet"], out=tmp_path / "spark", engine=drift_spark.SparkEngine(spark=spark), log=False)
    pdr = drift_command(current=data["parquet"], out=tmp_path / "pandas", log=False)
    a, b = sp.report, pdr.report
    print(f"\nspark drift {a['seconds']:.1f} s, pandas drift {b['seconds']:.1f} s; {sp.message}")
    assert a["rows"] == b["rows"] == ROWS and a["status"] == b["status"] and a["reasons"] == b["reasons"]
    assert set(a["psi"]) == set(b["psi"]) and "score" in a["psi"]
    for k in b["psi"]: assert abs(a["psi"][k] - b["psi"][k]) <= 1e-9, k
    assert a["distributions"] == b["distributions"] and a["chunking"] == b["chunking"]
    assert a["data_quality"] == b["data_quality"]
    for k, row in b["psi_table"].items(): assert a["psi_table"][k]["verdict"] == row["verdict"] and a["psi_table"][k]["moved_most"] == row["moved_most"]
    pa_, pb = pd.DataFrame(a["control_chart"]["points"]), pd.DataFrame(b["control_chart"]["points"])
    pd.testing.assert_frame_equal(pa_, pb, check_dtype=False, rtol=1e-9)
    assert a["performance"]["with_outcomes"] and a["performance"]["labelled_rows"] == b["performance"]["labelled_rows"]
    for k, v in b["performance"]["overall"].items():
        for q in ("value", "low", "high"): assert abs(a["performance"]["overall"][k][q] - v[q]) <= 1e-9, (k, q)
    pd.testing.assert_frame_equal(pd.DataFrame(a["performance"]["expected"]["chunks"]), pd.DataFrame(b["performance"]["expected"]["chunks"]),
                                  check_dtype=False, rtol=1e-9)
    assert json.loads((tmp_path / "spark" / "report.json").read_text())["status"] == a["status"]
    assert (tmp_path / "spark" / "report.html").stat().st_size > 10_000

def test_drift_by_period_and_time_order(registry, spark, data, tmp_path):
    "With a scored_at column (shuffled in the file): rows sorted by time, chunked by day or by rows, as the pandas engine does."
    df = data["df"].head(20_000).copy()
    rng = np.random.default_rng(3)
    df["scored_at"] = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10 * 86400, len(df)), unit="s")
    df.to_parquet(tmp_path / "timed.parquet", index=False)
    for kw in (dict(period="D"), dict(chunk_size=1_000)):
        sp = drift_command(tmp_path / "timed.parquet", out=tmp_path / "s", engine=drift_spark.SparkEngine(spark=spark), log=False, **kw)
        pdr = drift_command(current=tmp_path / "timed.parquet", out=tmp_path / "p", log=False, **kw)
        a, b = pd.DataFrame(sp.report["control_chart"]["points"]), pd.DataFrame(pdr.report["control_chart"]["points"])
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)
        assert sp.report["window"] == pdr.report["window"] and sp.report["chunking"] == pdr.report["chunking"]

def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg

def test_bad_input(registry, spark, data, tmp_path):
    "Missing columns, an unreadable file, text in a number column, an unknown engine: a one-line DataError on both engines."
    data["df"].drop(columns=["loan_amnt", "loan_grade"]).head(100).to_csv(tmp_path / "short.csv", index=False)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 this is not parquet")
    bad = data["df"].head(5000).astype({"person_income": object}); bad.loc[4321, "person_income"] = "lots"
    bad.to_csv(tmp_path / "text.csv", index=False)
    for engine in ("pandas", "spark"):
        kw = dict(engine=engine, progress=False, spark=spark if engine == "spark" else None)
        with pytest.raises(DataError) as e: scale.score_command(tmp_path / "short.csv", tmp_path / "o1", **kw)
        assert "lacks columns: loan_grade, loan_amnt" in _one_line(e)
        with pytest.raises(DataError) as e: scale.score_command(tmp_path / "junk.parquet", tmp_path / "o2", **kw)
        assert "is not a readable parquet file" in _one_line(e)
        with pytest.raises(DataError) as e: scale.score_command(tmp_path / "none.csv", tmp_path / "o3", **kw)
        assert "no such file" in _one_line(e)
        with pytest.raises(DataError) as e: scale.score_command(tmp_path / "text.csv", tmp_path / "o4", **kw)
        msg = _one_line(e)
        assert ("row 4321: person_income 'lots' is not a number" in msg) if engine == "pandas" else ("does not fit its column's type" in msg), msg
        assert not (tmp_path / "o4").exists() or engine == "spark"
    with pytest.raises(DataError) as e: drift_command(tmp_path / "short.csv", out=tmp_path / "d", engine=drift_spark.SparkEngine(spark=spark), log=False)
    assert "missing columns: loan_grade, loan_amnt" in _one_line(e)
    with pytest.raises(DataError) as e: scale.score_command(data["parquet"], tmp_path / "o5", engine="dask")
    assert "engine must be one of" in _one_line(e)
    with pytest.raises(DataError) as e: scale.score_command(data["parquet"], tmp_path / "o6", version="99")
    assert "registered model 'loan-default' has no version 99" in _one_line(e)

def test_one_line_on_stderr(registry, data, tmp_path):
    "In a fresh process, as the CLI runs it: a Spark failure leaves exactly one line on stderr (the JVM's log goes to a file)."
    import subprocess, sys
    bad = data["df"].head(2000).astype({"loan_amnt": object}); bad.loc[1500, "loan_amnt"] = "a lot"
    bad.to_csv(tmp_path / "text.csv", index=False)
    code = ("import sys, logging; logging.basicConfig(level=logging.WARNING)\nfrom loan_default.scale import score_command\nfrom loan_default.schema import DataError\n"
            f"try: score_command({str(tmp_path / 'text.csv')!r}, {str(tmp_path / 'out')!r}, engine='spark', master='local[1]')\n"
            "except DataError as e: print('error:', e, file=sys.stderr); sys.exit(1)")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=180,
                       env={**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri}, cwd=tmp_path)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-3000:]
    assert "does not fit its column's type" in r.stderr

def test_master_that_does_not_answer(registry, data, tmp_path):
    "A spark:// master nobody listens on: a one-line error well within 30 s, before Spark retries for minutes."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DataError) as e:
        scale.score_command(data["parquet"], tmp_path / "o", engine="spark", master=f"spark://127.0.0.1:{port}")
    assert "does not answer" in _one_line(e) and time.monotonic() - started < 30
    with pytest.raises(DataError) as e: scale.score_command(data["parquet"], tmp_path / "o", engine="spark", master="sparkk://x:7077")
    assert "not a Spark master URL" in _one_line(e)
    with pytest.raises(DataError) as e: scale.score_command(data["parquet"], tmp_path / "o", engine="pandas", master="local[2]")
    assert "--master is for the spark engine" in _one_line(e)


def _dirty_csv(df, path):
    "`df` as CSV with bad rows: text as an age, ages and incomes out of range, an unknown grade, a missing income, a ragged line, a broken quote."
    lines = df.to_csv(index=False).splitlines()
    cols = list(df.columns)
    def edit(i, col, value):
        f = lines[i].split(","); f[cols.index(col)] = value; lines[i] = ",".join(f)
    edit(17, "person_age", "abc"); edit(40, "person_age", "250"); edit(41, "person_age", " 33 "); edit(55, "loan_grade", "Z")
    edit(60, "person_income", "NA"); edit(61, "person_income", "-5"); edit(70, "loan_int_rate", "null"); edit(90, "person_age", "3e1")
    lines[100] = lines[100] + ",extra"; lines[120] = lines[120].replace(",", ',"', 1)
    path.write_text("\n".join(lines) + "\n")
    return path

def test_dirty_file_same_contract_and_psi(registry, spark, data, tmp_path):
    "Bad rows in a file: counted by rule, not fatal, on both engines; identical contract counts and PSI (to 1e-9) on the rows kept."
    f = _dirty_csv(data["df"].head(3000), tmp_path / "dirty.csv")
    sp = drift_command(f, out=tmp_path / "s", engine=drift_spark.SparkEngine(spark=spark), log=False)
    pdr = drift_command(current=f, out=tmp_path / "p", log=False)
    a, b = sp.report["data_quality"]["contract"], pdr.report["data_quality"]["contract"]
    assert b["rows_breaking"] == 7 and "type:person_age" in b["rules"] and "ragged_line" in b["rules"] and "broken_quoting" in b["rules"], b
    for k in ("rows", "rows_breaking", "rows_excluded", "share", "status", "rules", "examples"): assert a[k] == b[k], (k, a[k], b[k])
    assert sp.report["rows"] == pdr.report["rows"] == 3000 and sp.report["rows_compared"] == pdr.report["rows_compared"] < 3000
    assert set(sp.report["psi"]) == set(pdr.report["psi"]), (sp.report["psi"], pdr.report["psi"])
    for k in pdr.report["psi"]: assert abs(sp.report["psi"][k] - pdr.report["psi"][k]) <= 1e-9, k
    assert sp.report["data_quality"] == pdr.report["data_quality"] and sp.report["reasons"] == pdr.report["reasons"]
    assert json.loads((tmp_path / "s" / "report.json").read_text())["data_quality"]["contract"]["rules"]["type:person_age"]["rows"] == 1

def test_unusable_input_same_line_on_both_engines(registry, spark, data, tmp_path):
    "Empty, header only, missing or renamed columns, semicolons, a bad --since, a bad outcome: the pandas engine's one line on Spark too."
    head = ",".join(data["df"].columns)
    good = data["df"].head(50)
    cases = {"empty.csv": "", "blank.csv": "\n\n", "header.csv": head + "\n", "semi.csv": good.to_csv(index=False, sep=";"),
             "renamed.csv": good.rename(columns={"loan_amnt": "loan_amount"}).to_csv(index=False),
             "missing.csv": good.drop(columns=["person_age"]).to_csv(index=False)}
    y = good.astype({TARGET: object}); y.loc[7, TARGET] = "yes"; cases["label.csv"] = y.to_csv(index=False)
    t = good.assign(scored_at="2026-11-01T00:00:00Z"); t.loc[9, "scored_at"] = "not a time"; cases["time.csv"] = t.to_csv(index=False)
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError) as e: drift_command(current=tmp_path / name, out=tmp_path / "p", log=False)
        want = _one_line(e)
        with pytest.raises(DataError) as e: drift_command(tmp_path / name, out=tmp_path / "s", engine=drift_spark.SparkEngine(spark=spark), log=False)
        assert _one_line(e) == want, (name, want)
    t.to_csv(tmp_path / "timed.csv", index=False)
    for since, until in (("garbage", None), (None, "2026-13-45"), ("2026-11-02", "2026-11-01")):
        with pytest.raises(DataError) as e: drift_command(current=tmp_path / "timed.csv", since=since, until=until, out=tmp_path / "p", log=False)
        want = _one_line(e)
        with pytest.raises(DataError) as e: drift_command(tmp_path / "timed.csv", since=since, until=until, out=tmp_path / "s", engine=drift_spark.SparkEngine(spark=spark), log=False)
        assert _one_line(e) == want and "internal" not in want, (since, until, want)
    assert not (tmp_path / "s").exists()


def _same(a, b, at="report", tol=1e-9):
    "`a` equals `b`: floats to `tol`, everything else exactly (dicts, lists, strings, ints, booleans, None)."
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool), (at, a, b)
        assert (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol, (at, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (at, list(a), b if not isinstance(b, dict) else list(b))
        for k in a: _same(a[k], b[k], f"{at}.{k}", tol)
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), (at, a, b)
        for i, (x, y) in enumerate(zip(a, b)): _same(x, y, f"{at}[{i}]", tol)
    else: assert a == b, (at, a, b)

@pytest.fixture(scope="module")
def timed(data, tmp_path_factory):
    "30,000 rows scored over 10 days (shuffled in the file), a third of the outcomes not known yet, 300 rows the model was trained on, and from day 7 grade C's interest rates 3 points higher."
    d = tmp_path_factory.mktemp("timed")
    df = pd.concat([data["df"].head(29_700), synthesize(3000, seed=1, dirty=False).head(300)], ignore_index=True)   # the registry fixture trained on these
    rng = np.random.default_rng(5)
    df["scored_at"] = pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10 * 86400, len(df)), unit="s")
    late = (df.scored_at >= pd.Timestamp("2026-11-08", tz="UTC")) & (df.loan_grade == "C")
    df.loc[late, "loan_int_rate"] += 3
    df[TARGET] = df[TARGET].astype("float64").where(rng.uniform(size=len(df)) > 0.33)
    df = df.sample(frac=1, random_state=1).reset_index(drop=True)
    df.to_csv(d / "timed.csv", index=False)
    return d / "timed.csv"

@pytest.mark.parametrize("chunks", [dict(), dict(chunk_size=4_000)])
def test_same_timeline(registry, spark, timed, tmp_path, chunks):
    "Scored over 10 days with outcomes: both engines give the same chunking (a day a chunk by default, or by rows), timeline records, segments, overlap, summary and status."
    kw = dict(log=False, outcome_window="2d", as_of="2026-11-10T00:00:00Z", **chunks)
    started = time.perf_counter()
    pdr = drift_command(current=timed, out=tmp_path / "p", **kw)
    mid = time.perf_counter()
    sp = drift_command(timed, out=tmp_path / "s", engine=drift_spark.SparkEngine(spark=spark), **kw)
    print(f"\n{chunks or 'by day'}: pandas {mid - started:.1f} s, spark {time.perf_counter() - mid:.1f} s; {sp.message}")
    a, b = sp.report, pdr.report
    assert b["chunking"] == (dict(by="period", period="day", chosen="automatically: the finest period with enough rows a chunk") if not chunks
                             else dict(by="rows", size=4000))
    assert a["chunking"] == b["chunking"] and a["window"] == b["window"]
    tb = b["timeline"]
    assert len(tb) == (10 if not chunks else 8) and sum(r["rows"] for r in tb) == 30_000
    if not chunks: assert [r["start"][:10] for r in tb] == [f"2026-11-{d:02d}" for d in range(1, 11)]
    assert any(r["realised"]["roc_auc"] is not None for r in tb) and any(r["outcomes"]["matured"] is False for r in tb)
    assert any("loan_int_rate" in r["drifted"] for r in tb) and all(r["multivariate"] is not None for r in tb)
    _same(a["timeline"], tb, "timeline")
    for r, q in zip(a["timeline"], tb):                    # the parts the issue names, to be explicit
        assert (r["rows"], r["status"], r["drifted"], r["realised"], r["outcomes"]) == (q["rows"], q["status"], q["drifted"], q["realised"], q["outcomes"])
    assert b["segments"]["loan_grade"]["C"]["status"] in ("warn", "alert") and "loan_int_rate" in b["segments"]["loan_grade"]["C"]["drifted"]
    _same(a["segments"], b["segments"], "segments")
    assert b["overlap"]["rows"] >= 200 and a["overlap"] == b["overlap"]
    _same(a["summary"], b["summary"], "summary")
    assert a["status"] == b["status"] and a["monitoring"] == b["monitoring"]
    assert json.loads((tmp_path / "s" / "report.json").read_text())["timeline"][0]["rows"] == tb[0]["rows"]

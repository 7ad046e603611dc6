"""Drift monitoring with known answers: no false alarms on the real data (p-chart at the nominal rate, every PSI under
0.1), detection of each synthetic shift on the feature that moved, the prediction store read through the service's own
schema, the MLflow run linked to the model version (and the version's status tags written only when asked), and the
`fail_on` exit codes."""
import json
import numpy as np, pandas as pd
import pytest
from loan_default.drift import (Thresholds, drift_command, drift_report, p_chart, feature_counts, psi_table, read_store,
                                SCORE, TARGET)
from loan_default.profile import reference_profile, save_profile
from loan_default.schema import FEATURES, NUMERIC_FEATURES, CATEGORICAL_FEATURES
from loan_default.synth import synthesize, _default_chance

# ---------------------------------------------------------------- the real data: no false alarms

def _quick_model(df: pd.DataFrame):
    "A logistic regression on all applicant columns: a calibrated-in-the-large stand-in for the trained model."
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pre = make_column_transformer((num, NUMERIC_FEATURES), (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES))
    return make_pipeline(pre, LogisticRegression(max_iter=2000, C=10.0)).fit(df[FEATURES], df[TARGET])

@pytest.fixture(scope="module")
def real_reference(real_data):
    "The real file split 80/20: a model and reference profile from the 80%, the 20% held out."
    df = pd.read_csv(real_data)
    df = df[(df.person_age <= 100) & ~(df.person_emp_length > 60)].reset_index(drop=True)  # what validation rejects
    rng = np.random.default_rng(0)
    held = rng.random(len(df)) < 0.2
    train, rest = df[~held].reset_index(drop=True), df[held].reset_index(drop=True)
    model = _quick_model(train)
    p_train = model.predict_proba(train[FEATURES])[:, 1]
    return dict(df=df, train=train, held=rest, model=model, p_train=p_train, profile=reference_profile(train, p_train))

def test_p_chart_no_false_alarms_on_real_data(real_reference):
    "1,000 chunks of 500 rows drawn from the reference: breaches at about the nominal 0.27%, at most 1%."
    r, rng = real_reference, np.random.default_rng(1)
    rows = rng.integers(0, len(r["train"]), 500 * 1_000)
    chunks = np.arange(len(rows)) // 500
    predicted = p_chart(r["p_train"][rows], chunks, r["profile"]["score"]["mean"])
    realised = p_chart(r["train"][TARGET].to_numpy("float64")[rows], chunks, r["profile"]["default_rate"])
    print(f"breach rate: predicted {predicted.beyond_limits.mean():.2%}, realised {realised.beyond_limits.mean():.2%} (nominal 0.27%)")
    assert len(predicted) == 1_000 and (predicted.n == 500).all()
    assert predicted.beyond_limits.mean() <= 0.01
    assert realised.beyond_limits.mean() <= 0.01

def test_every_psi_below_0_1_on_random_samples_of_real_data(real_reference):
    r = real_reference
    worst = {}
    for seed in range(10):
        sample = r["df"].sample(5_000, random_state=seed)
        t = psi_table(r["profile"], feature_counts(r["profile"], sample, r["model"].predict_proba(sample[FEATURES])[:, 1]))
        worst = {f: max(worst.get(f, 0), v) for f, v in t.psi.items()}
        assert (t.psi < 0.1).all(), t.psi[t.psi >= 0.1]
    held = r["held"]
    t = psi_table(r["profile"], feature_counts(r["profile"], held, r["model"].predict_proba(held[FEATURES])[:, 1]))
    assert (t.psi < 0.1).all(), t.psi[t.psi >= 0.1]
    print("largest PSI over 10 samples of 5,000 rows:", {k: round(v, 4) for k, v in sorted(worst.items(), key=lambda kv: -kv[1])[:5]})

def test_held_out_real_data_is_ok(real_reference):
    "The whole report on the held-out 20% with outcomes, in random order: no drift status from PSI, data quality or the chart."
    r = real_reference
    # the file is sorted by credit history (3 years at the top, 12 at the bottom): in file order the chunks do differ
    held = r["held"].sample(frac=1, random_state=2).reset_index(drop=True)
    held = held.assign(**{SCORE: r["model"].predict_proba(held[FEATURES])[:, 1]})
    rep = drift_report(held, r["profile"], threshold=0.4, th=Thresholds(min_f1=0.0))
    assert set(v["verdict"] for v in rep["psi_table"].values()) == {"ok"}
    assert rep["data_quality"]["status"] == "ok", rep["reasons"]
    assert rep["control_chart"]["status"] != "alert", rep["reasons"]
    assert rep["performance"]["with_outcomes"] and rep["performance"]["overall"]["roc_auc"]["value"] > 0.8

# ---------------------------------------------------------------- detection

@pytest.fixture(scope="module")
def synthetic_reference():
    ref = synthesize(30_000, seed=10, dirty=False)
    return reference_profile(ref, _default_chance(ref))

MOVED = {"income": ["person_income"], "grade_mix": ["loan_grade"], "new_category": ["person_home_ownership"],
         "missing": ["person_emp_length", "loan_int_rate"]}

@pytest.mark.parametrize("shift", list(MOVED))
def test_each_shift_is_flagged_on_the_feature_that_moved(synthetic_reference, shift):
    cur = synthesize(20_000, seed=11, shift=shift, dirty=False)
    rep = drift_report(cur.assign(**{SCORE: _default_chance(cur)}), synthetic_reference, 0.4)
    for f in MOVED[shift]: assert rep["psi_table"][f]["verdict"] == "alert", (shift, f, rep["psi"][f])
    calm = [f for f in ("person_age", "cb_person_cred_hist_length", "loan_intent", "cb_person_default_on_file") if f not in MOVED[shift]]
    for f in calm: assert rep["psi"][f] < 0.1, (shift, f, rep["psi"][f])
    assert rep["status"] == "alert"
    if shift == "new_category": assert rep["data_quality"]["features"]["person_home_ownership"]["unseen_values"] == {"SHARED": pytest.approx(3_000, rel=0.1)}
    if shift == "missing":
        for f in MOVED[shift]: assert rep["data_quality"]["features"][f]["verdict"] == "alert"

def test_unshifted_synthetic_data_is_ok(synthetic_reference):
    cur = synthesize(20_000, seed=12, dirty=False)
    rep = drift_report(cur.assign(**{SCORE: _default_chance(cur)}), synthetic_reference, 0.4, th=Thresholds(min_f1=0.5))
    assert max(rep["psi"].values()) < 0.02 and rep["data_quality"]["status"] == "ok"
    assert rep["control_chart"]["status"] != "alert"

# ---------------------------------------------------------------- the prediction store, as the service writes it

def _write_store(url: str, df: pd.DataFrame, p: np.ndarray, times, version="1", outcomes=None):
    from loan_default.serve import store_engine, migrate, PREDICTIONS, OUTCOMES
    engine = store_engine(url)
    inputs = json.loads(df[FEATURES].to_json(orient="records"))
    with engine.begin() as conn:
        migrate(conn)                                   # the store's tables, as the service creates them
        conn.execute(PREDICTIONS.insert(), [dict(application_id=f"{version}-{i}", request_id="r", scored_at=t, model_name="loan-default",
                                                 model_version=version, probability_of_default=float(s), predicted_default=int(s >= 0.4),
                                                 decision="decline" if s >= 0.4 else "approve", inputs=x)
                                            for i, (x, s, t) in enumerate(zip(inputs, p, times))])
        if outcomes:
            now = pd.Timestamp.now(tz="UTC").to_pydatetime()
            conn.execute(OUTCOMES.insert(), [dict(application_id=f"{version}-{i}", loan_status=int(y), observed_at=None, recorded_at=now)
                                             for i, y in outcomes])
    engine.dispose()

def test_store_window_with_outcomes(tmp_path, synthetic_reference):
    pytest.importorskip("fastapi")
    cur = synthesize(3_000, seed=13, dirty=False)
    times = pd.date_range("2026-11-01", periods=len(cur), freq="1min", tz="UTC").to_pydatetime()
    url = f"sqlite:///{tmp_path}/predictions.db"
    _write_store(url, cur, _default_chance(cur), times, outcomes=[(i, y) for i, y in enumerate(cur.loan_status) if i % 2 == 0])
    got = read_store(url, since="2026-11-01 10:00", until="2026-11-02")
    assert len(got) == 14 * 60 and got.scored_at.min() == pd.Timestamp("2026-11-01 10:00", tz="UTC")
    assert got[TARGET].notna().mean() == pytest.approx(0.5)
    save_profile(synthetic_reference, tmp_path / "profile.json")
    res = drift_command(from_store=url, since="2026-11-01", until="2026-11-04", out=tmp_path / "out", profile=tmp_path / "profile.json",
                        threshold=0.4, period="h", log=False, th=Thresholds(min_f1=0.5))
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["rows"] == 3_000 and len(rep["control_chart"]["points"]) == 50
    assert rep["performance"]["with_outcomes"] and rep["performance"]["labelled_rows"] == 1_500
    assert rep["status"] in ("ok", "warn") and res.exit_code == 0

# ---------------------------------------------------------------- MLflow: reference from the registry, run linked back

@pytest.fixture
def registered(tmp_path, synthetic_reference, monkeypatch):
    "A registered version @production whose training run carries a reference profile, threshold and test metrics (no model)."
    import mlflow
    from mlflow import MlflowClient
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    client = MlflowClient()
    exp = client.create_experiment("train", artifact_location=str(tmp_path / "artifacts" / "train"))
    client.create_experiment("loan-default-drift", artifact_location=str(tmp_path / "artifacts" / "drift"))
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_param("threshold", 0.4)
        mlflow.log_metrics(dict(test_f1=0.72, test_roc_auc=0.92, test_brier=0.12))
        mlflow.log_dict(synthetic_reference, "reference_profile.json")
    client.create_registered_model("loan-default")
    mv = client.create_model_version("loan-default", f"{run.info.artifact_uri}", run_id=run.info.run_id)
    client.set_registered_model_alias("loan-default", "production", mv.version)
    yield client, run.info.run_id, str(mv.version)
    mlflow.set_tracking_uri(None)

def test_drift_run_logged_and_linked_to_the_model_version(tmp_path, registered):
    client, train_run, version = registered
    cur = synthesize(5_000, seed=14, shift="income", dirty=False)
    cur.assign(**{SCORE: _default_chance(cur)}).to_parquet(tmp_path / "current.parquet")
    adhoc = drift_command(tmp_path / "current.parquet", out=tmp_path / "adhoc", model="loan-default", th=Thresholds(min_f1=0.5))
    assert adhoc.report["status"] == "alert" and client.get_run(adhoc.run_id).data.tags["drift.updates_version"] == "false"
    assert not {"drift.last_run_id", "drift.last_status"} & set(client.get_model_version("loan-default", version).tags)   # ad hoc: the version untouched
    res = drift_command(tmp_path / "current.parquet", out=tmp_path / "out", model="loan-default", fail_on="alert",
                        th=Thresholds(min_f1=0.5), update_version=True)
    assert res.exit_code == 1 and res.report["status"] == "alert"
    assert res.report["model"]["version"] == version and res.report["model"]["threshold"] == 0.4
    assert res.report["performance"]["test"] == dict(f1=0.72, roc_auc=0.92, brier=0.12)
    run = client.get_run(res.run_id)
    assert run.data.tags["model.version"] == version and run.data.tags["model.run_id"] == train_run
    assert run.data.tags["drift.status"] == "alert" and run.data.tags["drift.updates_version"] == "true" and run.data.metrics["psi.person_income"] > 0.2
    history = sorted(client.get_metric_history(res.run_id, "timeline.psi.person_income"), key=lambda m: m.step)   # the timeline, chunk by chunk
    assert [m.step for m in history] == [r["chunk"] for r in res.report["timeline"]]
    assert [round(m.value, 9) for m in history] == [round(r["psi"]["person_income"], 9) for r in res.report["timeline"]]
    assert {a.path for a in client.list_artifacts(res.run_id)} == {"report.json", "report.html"}
    tags = client.get_model_version("loan-default", version).tags
    assert tags["drift.last_run_id"] == res.run_id and tags["drift.last_status"] == "alert"
    assert str(tmp_path) in run.info.artifact_uri

@pytest.mark.parametrize("shift,fail_on,code", [(None, "warn", 0), (None, "alert", 0), ("grade_mix", None, 0),
                                                ("grade_mix", "alert", 1), ("grade_mix", "warn", 1)])
def test_fail_on(tmp_path, synthetic_reference, shift, fail_on, code):
    cur = synthesize(5_000, seed=15, shift=shift, dirty=False)
    cur.assign(**{SCORE: _default_chance(cur)}).to_csv(tmp_path / "current.csv", index=False)
    save_profile(synthetic_reference, tmp_path / "profile.json")
    res = drift_command(tmp_path / "current.csv", out=tmp_path / "out", profile=tmp_path / "profile.json", threshold=0.4,
                        fail_on=fail_on, log=False, th=Thresholds(min_f1=0.5))
    assert res.exit_code == code, (res.report["status"], res.report["reasons"])

def test_report_html_is_self_contained(tmp_path, synthetic_reference):
    cur = synthesize(5_000, seed=16, shift="missing", dirty=False)
    cur.assign(**{SCORE: _default_chance(cur)}).to_csv(tmp_path / "current.csv", index=False)
    save_profile(synthetic_reference, tmp_path / "profile.json")
    drift_command(tmp_path / "current.csv", out=tmp_path, profile=tmp_path / "profile.json", threshold=0.4, log=False)
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "<script" not in html and "src=\"http" not in html and "href=\"http" not in html and "@import" not in html
    assert "loan_int_rate" in html and "ALERT" in html

def test_file_without_scores_is_scored_by_the_registered_model(tmp_path, monkeypatch):
    "A real trained, logged, registered and promoted model: the unscored file is scored by it, against its own reference."
    import mlflow
    from mlflow import MlflowClient
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register, promote
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    try:
        client = MlflowClient()
        for e in ("loan-default", "loan-default-drift"): client.create_experiment(e, artifact_location=str(tmp_path / "artifacts" / e))
        result = train_model(synthesize(3_000, seed=17, dirty=False), time_budget_s=3, seed=1)
        logged = log_training(result, tmp_path / "train.csv")
        reg = register(logged.run_id, min_f1=0.3, min_roc_auc=0.7)
        promote()
        cur = synthesize(2_000, seed=18, shift="missing")
        cur.drop(columns="loan_status").to_csv(tmp_path / "unscored.csv", index=False)
        res = drift_command(tmp_path / "unscored.csv", out=tmp_path / "out", fail_on="warn", update_version=True)
        rep = res.report
        assert rep["model"]["version"] == reg.version and rep["model"]["threshold"] == pytest.approx(result.threshold)
        assert "score" in rep["psi"] and rep["control_chart"]["p0"] == pytest.approx(float(np.mean(result.model.predict_proba(result.splits["train"][FEATURES]))))
        assert rep["psi_table"]["loan_int_rate"]["verdict"] == "alert" and res.exit_code == 1
        assert not rep["performance"]["with_outcomes"] and rep["performance"]["expected"]["overall"]["expected_f1"] > 0
        assert client.get_model_version("loan-default", reg.version).tags["drift.last_status"] == "alert"
    finally: mlflow.set_tracking_uri(None); mlflow.set_registry_uri(None)

# ---------------------------------------------------------------- the store counted chunk by chunk: the same report

def _same_report(x, y, at="report"):
    "Two reports alike; floats to 1e-7 (sums added in another order, matrix products of another shape)."
    if isinstance(x, dict):
        assert list(x) == list(y), at
        for k in x:
            if k not in ("generated_at", "timings", "seconds"): _same_report(x[k], y[k], f"{at}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), at
        for u, v in zip(x, y): _same_report(u, v, at)
    elif isinstance(x, float) and isinstance(y, float): assert x == pytest.approx(y, rel=1e-7, abs=1e-12) or (x != x and y != y), (at, x, y)
    else: assert x == y, (at, x, y)

def test_store_counted_in_chunks_gives_the_whole_frame_report(tmp_path, synthetic_reference):
    "Reference rows (timeline levels, segments, overlap), outcomes, contract breaks and bad JSON: read 137 rows at a time, the report of the whole window."
    pytest.importorskip("fastapi")
    import sqlite3
    from types import SimpleNamespace
    from loan_default.drift import pandas_counts, counts_report, store_counts, store_window, _clean
    from loan_default.timeline import baseline
    ref_rows = synthesize(4_000, seed=19, dirty=False)
    p_ref = _default_chance(ref_rows)
    b = baseline(synthetic_reference, ref_rows, p_ref, 0.4, ref_rows[TARGET], seen=ref_rows[FEATURES], seen_what="the reference rows", source="test")
    cur = pd.concat([synthesize(2_950, seed=20, shift="income"), ref_rows.head(50)], ignore_index=True)   # dirty rows; 50 rows the model saw
    times = (pd.Timestamp("2026-11-01", tz="UTC") + pd.to_timedelta(np.arange(len(cur)) * 5, unit="min")).to_pydatetime()
    url = f"sqlite:///{tmp_path}/p.db"
    _write_store(url, cur, np.clip(_default_chance(cur), 0, 1), times, outcomes=[(i, y) for i, y in enumerate(cur.loan_status) if i % 3 and y == y])
    with sqlite3.connect(tmp_path / "p.db") as con:
        con.execute("update predictions set inputs = json_set(inputs, '$.person_age', 'abc') where id in (10, 1400)")
        con.execute("update predictions set inputs = 'not json' where id in (11, 2900)")
    ref = SimpleNamespace(profile=synthetic_reference, threshold=0.4, model=None, baseline=b)
    for kw in (dict(), dict(period="D"), dict(chunk_size=333)):
        th = Thresholds(min_rows=200, min_f1=0.5)
        whole = pandas_counts(read_store(url), synthetic_reference, 0.4, kw.get("chunk_size"), kw.get("period"), th=th, baseline=b)
        chunked = store_counts(store_window(url, chunk_rows=137), ref, th, kw.get("chunk_size"), kw.get("period"))
        assert chunked.rows == len(cur) and chunked.contract["rows_breaking"] > 4 and chunked.overlap_hits >= 50
        assert chunked.labelled is not None and len(chunked.labelled) == len(whole.labelled) > 500
        report = lambda c: _clean(counts_report(c, synthetic_reference, 0.4, dict(f1=0.7, roc_auc=0.8, brier=0.15), None, th, b, "3D", "2026-12-01"))
        _same_report(report(whole), report(chunked))

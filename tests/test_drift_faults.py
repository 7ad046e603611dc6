"""Drift on dirty, small, unordered and hostile data, through the real `loan-default drift` command: a bad row is counted
and shown (never the reason no report exists), too few rows are `insufficient data` (never an alert), a file without
`scored_at` is one sample (never a time series in file order), each unusable input is one line naming the problem,
the prediction store is never created by monitoring, and every value from data is escaped in the HTML."""
import json, sqlite3
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from conftest import run_cli, one_line_error
from loan_default.drift import SCORE, INSUFFICIENT
from loan_default.profile import reference_profile, save_profile
from loan_default.schema import FEATURES, TARGET
from loan_default.synth import synthesize, _default_chance

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'

@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    "A reference profile of the synthetic population, and a clean scored current sample of 3,000 rows from it."
    d = tmp_path_factory.mktemp("drift-faults")
    train = synthesize(30_000, seed=10, dirty=False)
    save_profile(reference_profile(train, _default_chance(train)), d / "profile.json")
    cur = synthesize(3_000, seed=21, dirty=False)
    return dict(dir=d, profile=d / "profile.json", current=cur.assign(**{SCORE: _default_chance(cur)}))

def drift(ref, path, out, *extra, env=None):
    "Run `loan-default drift` on `path` against the reference profile, offline; return the process and the report (None if none)."
    r = run_cli("drift", "--current", path, "--profile", ref["profile"], "--threshold", "0.4", "--no-log", "--out", out, *extra,
                env={"LD_MIN_F1": "0.5", **(env or {})}, timeout=300)   # synthetic data tops out below the real gate
    rep = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return r, rep

def drift_here(ref, path, out, **kw):
    "The same command in this process (for the many variants of one fault; each kind also runs through the CLI above)."
    from loan_default.drift import drift_command, Thresholds
    return drift_command(path, out=out, profile=ref["profile"], threshold=0.4, log=False, th=Thresholds(min_f1=0.5), **kw)

def verdicts(rep) -> set: return {v["verdict"] for v in rep["psi_table"].values()}

# ---------------------------------------------------------------- a bad row is counted, shown and left out

def test_one_bad_age_in_3000_rows_is_counted_not_fatal(ref, tmp_path):
    cur = ref["current"].astype({"person_age": "object"})
    cur.loc[17, "person_age"] = "abc"
    cur.to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--fail-on", "alert")
    assert r.returncode == 0, r.stderr
    c = rep["data_quality"]["contract"]
    assert (rep["rows"], rep["rows_compared"], c["rows_breaking"], c["rows_excluded"]) == (3_000, 2_999, 1, 1)
    assert c["rules"]["type:person_age"]["rows"] == 1 and c["rules"]["type:person_age"]["excluded"]
    assert c["examples"] == [dict(where="line 19", reasons="type:person_age", values={"person_age": "abc"})]   # header is line 1
    assert rep["status"] == "warn" and c["status"] == "warn" and any("break the data contract" in x for x in rep["reasons"])
    assert rep["performance"]["labelled_rows"] == 2_999 and rep["control_chart"]["points"][0]["n"] == 2_999
    html = (tmp_path / "out" / "report.html").read_text()
    assert "type:person_age" in html and "line 19" in html
    assert "2,999 compared" in r.stdout

@pytest.mark.parametrize("column,value,rule", [("person_income", "inf", "type:person_income"), ("loan_grade", "", "missing:loan_grade"),
                                               ("loan_amnt", "12,5", "ragged_line")])
def test_other_unusable_values_are_excluded_rows(ref, tmp_path, column, value, rule):
    cur = ref["current"].astype({column: "object"})
    cur.loc[[5, 6], column] = value
    cur.to_csv(tmp_path / "cur.csv", index=False, quoting=3 if rule == "ragged_line" else 0, escapechar="\\")
    rep = drift_here(ref, tmp_path / "cur.csv", tmp_path / "out").report
    c = rep["data_quality"]["contract"]
    assert c["rules"][rule]["rows"] == 2 and c["rows_excluded"] == 2 and rep["rows_compared"] == 2_998
    assert [e["where"] for e in c["examples"]] == ["line 7", "line 8"]

def test_a_file_of_garbage_is_an_alert_with_a_report(ref, tmp_path):
    cur = ref["current"].astype({"person_age": "object"}).assign(person_age="abc")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--fail-on", "alert")
    assert r.returncode == 1 and rep["status"] == "alert" and r.stderr.startswith("error: drift alert")
    assert rep["rows_compared"] == 0 and verdicts(rep) == {INSUFFICIENT}
    assert rep["data_quality"]["contract"]["share"] == 1.0 and rep["data_quality"]["status"] == "alert"

def test_values_outside_the_contract_stay_in_data_quality(ref, tmp_path):
    "Out-of-range ages and unseen categories are what data-quality drift measures: counted as contract breaks, and kept."
    cur = ref["current"].copy()
    cur.loc[:99, "person_age"] = 144
    cur.loc[100:199, "person_home_ownership"] = "SHARED"
    cur.to_csv(tmp_path / "cur.csv", index=False)
    rep = drift_here(ref, tmp_path / "cur.csv", tmp_path / "out").report
    c, q = rep["data_quality"]["contract"], rep["data_quality"]["features"]
    assert rep["rows_compared"] == 3_000 and c["rows_breaking"] == 200 and c["rows_excluded"] == 0
    assert q["person_age"]["out_of_range"] == pytest.approx(100 / 3_000) and q["person_home_ownership"]["unseen_values"] == {"SHARED": 100}
    assert rep["status"] == "alert"

# ---------------------------------------------------------------- too few rows: insufficient data, not alert

@pytest.mark.parametrize("n", [1, 30])
def test_a_handful_of_rows_is_insufficient_data(ref, tmp_path, n):
    ref["current"].head(n).to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--fail-on", "warn")
    assert r.returncode == 0, r.stderr
    assert rep["status"] == INSUFFICIENT and verdicts(rep) == {INSUFFICIENT}
    assert rep["control_chart"]["status"] == INSUFFICIENT and rep["performance"]["status"] == INSUFFICIENT
    assert {v["verdict"] for v in rep["data_quality"]["features"].values()} == {INSUFFICIENT}
    assert r.stdout.startswith(f"drift {INSUFFICIENT}: {n} rows") and "PSI not judged" in r.stdout
    assert INSUFFICIENT in (tmp_path / "out" / "report.html").read_text()
    ref["current"].head(3).to_csv(tmp_path / "three.csv", index=False)
    assert drift_here(ref, tmp_path / "three.csv", tmp_path / "o3", fail_on="warn").exit_code == 0

def test_the_minimum_is_a_setting(ref, tmp_path):
    ref["current"].head(30).to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", env={"LD_DRIFT_MIN_ROWS": "20"})
    assert r.returncode == 0 and rep["min_rows"] == 20 and INSUFFICIENT not in verdicts(rep)
    bad = run_cli("drift", "--current", tmp_path / "cur.csv", "--profile", ref["profile"], "--no-log", "--out", tmp_path / "o2",
                  env={"LD_DRIFT_MIN_ROWS": "many"})
    one_line_error(bad, "LD_DRIFT_MIN_ROWS")

def test_small_chunks_are_shown_not_judged(ref, tmp_path):
    "Hourly chunks of 60 rows: each drawn and listed as insufficient data, none an alarm, even when far off."
    cur = ref["current"].assign(scored_at=pd.date_range("2026-11-01", periods=3_000, freq="1min", tz="UTC"))
    cur.loc[:59, SCORE] = 0.95
    cur.to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--period", "h")
    pts = rep["control_chart"]["points"]
    assert len(pts) == 50 and {p["status"] for p in pts} == {INSUFFICIENT} and not any(p["beyond_limits"] for p in pts)
    assert rep["control_chart"]["status"] == INSUFFICIENT

# ---------------------------------------------------------------- order: scored_at, never file order

def _quick_model(df):
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from loan_default.schema import NUMERIC_FEATURES, CATEGORICAL_FEATURES
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pre = make_column_transformer((num, NUMERIC_FEATURES), (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES))
    return make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(df[FEATURES], df[TARGET])

def test_the_real_file_sorted_by_age_is_one_sample_not_a_time_series(real_data, tmp_path):
    df = pd.read_csv(real_data)
    df = df[(df.person_age <= 100) & ~(df.person_emp_length > 60)].reset_index(drop=True)
    model = _quick_model(df)
    p = model.predict_proba(df[FEATURES])[:, 1]
    save_profile(reference_profile(df, p), tmp_path / "profile.json")
    df.assign(**{SCORE: p}).sort_values("person_age").to_csv(tmp_path / "by_age.csv", index=False)
    r = run_cli("drift", "--current", tmp_path / "by_age.csv", "--profile", tmp_path / "profile.json", "--no-log",
                "--out", tmp_path / "out", "--fail-on", "warn", env={"LD_MIN_F1": "0.5"})   # a quick model, below the real gate
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert r.returncode == 0, (r.stderr, rep["reasons"])
    assert rep["chunking"]["by"] == "none" and "no time order" in rep["chunking"]["reason"]
    assert len(rep["control_chart"]["points"]) == 1 and rep["control_chart"]["status"] == "ok"
    assert max(rep["psi"].values()) < 0.01 and rep["status"] == "ok"
    assert "no time order" in (tmp_path / "out" / "report.html").read_text()
    with pytest.raises(Exception, match="needs a scored_at column"):
        drift_here(dict(profile=tmp_path / "profile.json"), tmp_path / "by_age.csv", tmp_path / "o2", chunk_size=500)
    assert not (tmp_path / "o2" / "report.json").exists()

def test_chunks_follow_scored_at_not_file_order(ref, tmp_path):
    "Rows written newest first, the last 1,000 in time riskier: the chart reads them in time order and finds the late shift."
    cur = pd.concat([ref["current"].head(2_000), synthesize(1_000, seed=22, shift="grade_mix", dirty=False)], ignore_index=True)
    cur = cur.assign(**{SCORE: _default_chance(cur)}, scored_at=pd.date_range("2026-11-01", periods=3_000, freq="1min").strftime("%Y-%m-%dT%H:%M:%SZ"))
    cur.iloc[::-1].to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--chunk-size", "500")
    pts = rep["control_chart"]["points"]
    assert [p["start"][:16] for p in pts][:2] == ["2026-11-01 00:00", "2026-11-01 08:20"]
    assert [p["beyond_limits"] for p in pts] == [False] * 4 + [True] * 2
    assert rep["window"] == dict(start="2026-11-01 00:00:00+00:00", end="2026-11-03 01:59:00+00:00")

def test_scored_at_with_mixed_time_zones_is_read_in_utc(ref, tmp_path):
    cur = ref["current"].head(600).assign(scored_at=["2026-11-01T12:00:00+02:00", "2026-11-01 09:00", "2026-11-01T11:00:00Z"] * 200)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--since", "2026-11-01T09:30Z")
    assert r.returncode == 0, r.stderr
    assert rep["rows"] == 400 and rep["window"] == dict(start="2026-11-01 10:00:00+00:00", end="2026-11-01 11:00:00+00:00")

# ---------------------------------------------------------------- unusable input: one line naming the problem, no report

def _write(ref, path, kind):
    cur = ref["current"].head(600)
    if kind == "empty": path.write_text("")
    elif kind == "header_only": path.write_text(",".join(cur.columns) + "\n")
    elif kind == "missing_column": cur.drop(columns="loan_grade").to_csv(path, index=False)
    elif kind == "renamed_column": cur.rename(columns={"person_age": "age"}).to_csv(path, index=False)
    elif kind == "semicolon": cur.to_csv(path, index=False, sep=";")
    elif kind == "duplicate_column": pd.concat([cur, cur[["person_age"]]], axis=1).to_csv(path, index=False)
    elif kind == "label_2": cur.assign(**{TARGET: [0, 1, 2] * 200}).to_csv(path, index=False)
    elif kind == "label_yes": cur.astype({TARGET: "object"}).assign(**{TARGET: ["yes"] + [0] * 599}).to_csv(path, index=False)
    elif kind == "probability_1.5": cur.assign(**{SCORE: [1.5] + [0.1] * 599}).to_csv(path, index=False)
    elif kind == "probability_nan": cur.assign(**{SCORE: [0.1] * 599 + [np.nan]}).to_csv(path, index=False)
    elif kind == "probability_inf": cur.assign(**{SCORE: [0.1] * 598 + [np.inf, 0.1]}).to_csv(path, index=False)
    elif kind == "probability_text": cur.astype({SCORE: "object"}).assign(**{SCORE: ["high"] + [0.1] * 599}).to_csv(path, index=False)
    elif kind == "scored_at_garbage": cur.assign(scored_at=["2026-11-01"] * 599 + ["not a time"]).to_csv(path, index=False)
    elif kind == "scored_at_empty": cur.assign(scored_at=["2026-11-01"] * 599 + [None]).to_csv(path, index=False)
    elif kind == "parquet_label_text": cur.astype({TARGET: "object"}).assign(**{TARGET: ["no"] * 600}).to_parquet(path)
    elif kind == "directory": path.mkdir()
    elif kind == "binary": path.write_bytes(b"\x00\x01\x02" * 100)

BAD = {"empty": ["is empty"], "header_only": ["header but no data rows"], "missing_column": ["missing columns: loan_grade"],
       "renamed_column": ["missing columns: person_age", "did you mean person_age?"], "semicolon": ["use commas"],
       "duplicate_column": ["repeated columns: person_age"], "label_2": ["line 4", "loan_status", "not an outcome"],
       "label_yes": ["line 2", "'yes'", "not an outcome"], "probability_1.5": ["line 2", "1.5", "not a probability"],
       "probability_nan": ["line 601", "probability_of_default is missing"], "probability_inf": ["line 600", "not a probability"],
       "probability_text": ["line 2", "'high'", "not a probability"], "scored_at_garbage": ["line 601", "'not a time'", "not a date and time"],
       "scored_at_empty": ["line 601", "scored_at is empty"], "parquet_label_text": ["row 1", "'no'", "not an outcome"],
       "directory": ["is a directory"], "binary": ["binary"]}

@pytest.mark.parametrize("kind", ["empty", "semicolon", "label_yes", "scored_at_garbage"])
def test_unusable_input_is_one_line(ref, tmp_path, kind):
    path = tmp_path / ("cur.parquet" if kind.startswith("parquet") else "cur.csv")
    _write(ref, path, kind)
    r, rep = drift(ref, path, tmp_path / "out")
    one_line_error(r, *BAD[kind])
    assert rep is None and not (tmp_path / "out" / "report.html").exists()

def test_every_kind_of_unusable_input_is_one_line(ref, tmp_path):
    from loan_default.schema import DataError
    for kind, words in BAD.items():
        path = tmp_path / kind / ("cur.parquet" if kind.startswith("parquet") else "cur.csv")
        path.parent.mkdir()
        _write(ref, path, kind)
        with pytest.raises(DataError) as e: drift_here(ref, path, tmp_path / kind / "out")
        message = str(e.value)
        assert "\n" not in message and all(w in message for w in words), (kind, message)
        assert not (tmp_path / kind / "out").exists(), kind

@pytest.mark.parametrize("since,until,words", [("yesterday", None, ["--since 'yesterday'", "not a date"]),
                                                (None, "2026-13-45", ["--until '2026-13-45'"]),
                                                ("2030-01-01", None, ["no rows with scored_at from 2030-01-01"])])
def test_bad_window_is_one_line(ref, tmp_path, since, until, words):
    ref["current"].head(600).assign(scored_at="2026-11-01T10:00Z").to_csv(tmp_path / "cur.csv", index=False)
    if since == "yesterday":
        r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--since", since)
        one_line_error(r, *words)
        assert rep is None
    from loan_default.schema import DataError
    with pytest.raises(DataError) as e: drift_here(ref, tmp_path / "cur.csv", tmp_path / "o2", since=since, until=until)
    assert all(w in str(e.value) for w in words), str(e.value)

def test_profile_that_is_not_a_profile_is_one_line(ref, tmp_path):
    ref["current"].head(600).to_csv(tmp_path / "cur.csv", index=False)
    (tmp_path / "p.json").write_text("{not json")
    from loan_default.schema import DataError
    with pytest.raises(DataError, match=r"p\.json:? (is )?not a reference profile"): drift_here(dict(profile=tmp_path / "p.json"), tmp_path / "cur.csv", tmp_path / "out")

def test_parquet_with_wrong_types_is_read_through_the_contract(ref, tmp_path):
    "Numbers stored as text (one of them garbage) and a category stored as integers: rows counted, a report written."
    cur = ref["current"].head(1_000).astype({"person_age": "str"})
    cur.loc[3, "person_age"] = "abc"
    cur = cur.assign(loan_grade=cur.loan_grade.map({g: i for i, g in enumerate("ABCDEFG")}))
    cur.to_parquet(tmp_path / "cur.parquet")
    rep = drift_here(ref, tmp_path / "cur.parquet", tmp_path / "out").report
    c = rep["data_quality"]["contract"]
    assert c["rules"]["type:person_age"]["rows"] == 1 and c["rules"]["category:loan_grade"]["rows"] == 1_000
    assert c["examples"][0]["where"] == "row 1" and rep["psi_table"]["loan_grade"]["verdict"] == "alert" and rep["status"] == "alert"

def test_an_all_missing_column(ref, tmp_path):
    ref["current"].assign(loan_int_rate=np.nan).to_csv(tmp_path / "cur.csv", index=False)
    res = drift_here(ref, tmp_path / "cur.csv", tmp_path / "out", fail_on="alert")
    rep = res.report
    assert res.exit_code == 1 and rep["data_quality"]["features"]["loan_int_rate"]["missing_rate"] == 1.0
    assert rep["data_quality"]["features"]["loan_int_rate"]["verdict"] == "alert" and rep["rows_compared"] == 3_000

# ---------------------------------------------------------------- the prediction store is read, never created

def test_from_store_on_a_missing_sqlite_file_creates_nothing(ref, tmp_path):
    db = tmp_path / "nope" / "predictions.db"
    r = run_cli("drift", "--from-store", f"sqlite:///{db}", "--profile", ref["profile"], "--no-log", "--out", tmp_path / "out")
    one_line_error(r, "no prediction store", str(db))
    assert not db.exists() and not db.parent.exists()
    from loan_default.drift import drift_command
    from loan_default.schema import DataError
    (tmp_path / "junk.db").write_text("this is not a database\n" * 100)
    with pytest.raises(DataError, match="junk.db"): drift_command(from_store=f"sqlite:///{tmp_path / 'junk.db'}", profile=ref["profile"], log=False, out=tmp_path / "o")
    assert (tmp_path / "junk.db").read_text().startswith("this is not a database")
    with pytest.raises(DataError, match="not a database URL"): drift_command(from_store="not a url", profile=ref["profile"], log=False, out=tmp_path / "o")

def test_from_store_opens_sqlite_read_only(ref, tmp_path):
    "An existing store with both tables but no rows: one line, and the file is byte for byte unchanged."
    db = tmp_path / "predictions.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table predictions (id integer primary key, application_id text, scored_at timestamp, model_name text, "
                     "model_version text, probability_of_default real, predicted_default integer, inputs json)")
        conn.execute("create table outcomes (id integer primary key, application_id text, loan_status integer)")
    before = db.read_bytes()
    r = run_cli("drift", "--from-store", f"sqlite:///{db}", "--profile", ref["profile"], "--no-log", "--out", tmp_path / "out")
    one_line_error(r, "no predictions in the store")
    assert db.read_bytes() == before and not (tmp_path / "predictions.db-wal").exists()

# ---------------------------------------------------------------- every value from data is escaped in the HTML

def test_markup_in_data_is_escaped_in_report_html(ref, tmp_path):
    cur = ref["current"].copy()
    cur.loc[:99, "person_home_ownership"] = SCRIPT
    cur.loc[100:199, "loan_intent"] = IMG
    cur = cur.astype({"person_age": "object"})
    cur.loc[200, "person_age"] = f"<b>{SCRIPT}</b>"
    cur.to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert rep["data_quality"]["features"]["person_home_ownership"]["unseen_values"] == {SCRIPT: 100}
    html = (tmp_path / "out" / "report.html").read_text()
    assert SCRIPT not in html and "<script" not in html and "<img src=x" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;&lt;script&gt;" in html                       # the garbage age, shown as an example of a broken row

def test_markup_in_run_name_data_path_and_tags_is_escaped_in_the_model_card(tmp_path, monkeypatch):
    "A real trained, logged and registered version whose data path, run name and tags carry markup: the logged card shows them as text."
    import mlflow
    from mlflow import MlflowClient
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register
    from loan_default.model_card import model_card, log_model_card, CARD_TAGS
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    client = MlflowClient()
    client.create_experiment("loan-default", artifact_location=str(tmp_path / "artifacts"))
    evil_path = tmp_path / '<script>alert(1)"><img src=x onerror=alert(1)>.csv'        # a file name holds no "/"
    data = synthesize(3_000, seed=23, dirty=False)
    data.to_csv(evil_path, index=False)
    logged = log_training(train_model(data, time_budget_s=2, seed=1), evil_path, run_name=SCRIPT)
    client.set_tag(logged.run_id, "git.commit", f"**{IMG}**`x`")
    reg = register(logged.run_id, min_f1=0.3, min_roc_auc=0.7)
    log_model_card(client, "loan-default", reg.version)
    dl = tmp_path / "dl"
    html = Path(mlflow.artifacts.download_artifacts(client.get_model_version("loan-default", reg.version).tags[CARD_TAGS["html"]], dst_path=str(dl))).read_text()
    md = model_card(("loan-default", reg.version), client).markdown
    assert "<script" not in html and "<img src=x" not in html and "<strong>&#34;" not in html
    assert "&lt;script&gt;alert(1)&#34;&gt;&lt;img src=x onerror=alert(1)&gt;.csv" in html
    assert "**&#34;&gt;&lt;img" in html                              # the commit's asterisks are text, not bold
    assert f"`{evil_path.name}`" in md and f"`` **{IMG}**`x` ``" in md   # code spans, the second fenced past its backtick
    assert "<script" not in md.replace(f"`{evil_path.name}`", "")

# ---------------------------------------------------------------- second round: parquet, periods, windows, profiles, damaged stores

def test_parquet_values_are_normalised_as_validate_reads_them(ref, tmp_path):
    "'NA', blanks and padded categories in a parquet of text: missing and trimmed, as in a CSV, never type errors."
    cur = ref["current"].astype(str)
    cur.loc[:5, "loan_int_rate"] = "NA"; cur.loc[6:9, "person_emp_length"] = " "; cur.loc[10:12, "person_home_ownership"] = " RENT "
    cur.to_parquet(tmp_path / "cur.parquet")
    rep = drift_here(ref, tmp_path / "cur.parquet", tmp_path / "out").report
    assert rep["data_quality"]["contract"]["rows_breaking"] == 0 and rep["rows_compared"] == 3_000
    missing = (ref["current"].loan_int_rate.isna() | (ref["current"].index <= 5)).mean()
    assert rep["data_quality"]["features"]["loan_int_rate"]["missing_rate"] == pytest.approx(missing)

@pytest.mark.parametrize("period,chunks,words", [("3D", 4, None), ("W", 2, None), ("0D", None, "not a pandas frequency"),
                                                 ("-1D", None, "not a pandas frequency"), ("D;drop", None, "not a pandas frequency"),
                                                 ("ns", None, "choose a longer period")])
def test_odd_periods(ref, tmp_path, period, chunks, words):
    from loan_default.schema import DataError
    t = pd.date_range("2026-11-01", periods=20_001, freq="53s", tz="UTC")[:: 20_001 // 3_000 + 1][:3_000] if period == "ns" else \
        pd.date_range("2026-11-02", periods=3_000, freq="4min", tz="UTC")          # about 8 days
    cur = ref["current"].head(len(t)).assign(scored_at=t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cur = pd.concat([cur] * (4 if period == "ns" else 1), ignore_index=True) if period == "ns" else cur
    if period == "ns": cur = cur.assign(scored_at=pd.date_range("2026-11-01", periods=len(cur), freq="1ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    cur.to_csv(tmp_path / "cur.csv", index=False)
    if words:
        with pytest.raises(DataError, match=words): drift_here(ref, tmp_path / "cur.csv", tmp_path / "out", period=period)
        assert not (tmp_path / "out").exists()
    else: assert len(drift_here(ref, tmp_path / "cur.csv", tmp_path / "out", period=period).report["control_chart"]["points"]) == chunks

def test_empty_or_reversed_window_is_one_line(ref, tmp_path):
    ref["current"].head(600).assign(scored_at="2026-11-01T10:00Z").to_csv(tmp_path / "cur.csv", index=False)
    r, rep = drift(ref, tmp_path / "cur.csv", tmp_path / "out", "--since", "2026-12-01", "--until", "2026-11-01")
    one_line_error(r, "--since 2026-12-01 is not before --until 2026-11-01")
    from loan_default.schema import DataError
    with pytest.raises(DataError, match="--since '' is not a date"): drift_here(ref, tmp_path / "cur.csv", tmp_path / "o2", since="")

@pytest.mark.parametrize("content", ["[]", "null", '{"version": 1}', '{"version": 1, "features": {"person_age": 3}}', "", "{x"])
def test_every_broken_profile_is_one_line(ref, tmp_path, content):
    from loan_default.schema import DataError
    ref["current"].head(600).to_csv(tmp_path / "cur.csv", index=False)
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(DataError, match=r"p\.json:? (is )?not a reference profile"): drift_here(dict(profile=tmp_path / "p.json"), tmp_path / "cur.csv", tmp_path / "out")

def test_hints_for_percentages_and_epoch_times(ref, tmp_path):
    from loan_default.schema import DataError
    cur = ref["current"].head(600)
    cur.assign(**{SCORE: cur[SCORE] * 100}).to_csv(tmp_path / "pct.csv", index=False)
    with pytest.raises(DataError, match="look like percentages"): drift_here(ref, tmp_path / "pct.csv", tmp_path / "o1")
    cur.assign(scored_at=1_793_000_000).to_csv(tmp_path / "epoch.csv", index=False)
    with pytest.raises(DataError, match="numbers are not read as times"): drift_here(ref, tmp_path / "epoch.csv", tmp_path / "o2")

def _store(db, n, versions=("1",), scored_at=None, inputs=None):
    "A store with the service's two tables and `n` predictions (round-robin over `versions`), optionally damaged."
    cur = synthesize(n, seed=31, dirty=False)
    p = _default_chance(cur)
    with sqlite3.connect(db) as conn:
        conn.execute("create table predictions (id integer primary key, application_id text, request_id text, scored_at timestamp, model_name text, "
                     "model_version text, probability_of_default real, predicted_default integer, decision text, inputs json, reasons json)")
        conn.execute("create table outcomes (id integer primary key, application_id text, loan_status integer, observed_at timestamp, recorded_at timestamp)")
        rows = json.loads(cur[FEATURES].to_json(orient="records"))
        t = pd.date_range("2026-11-01", periods=n, freq="1min")
        conn.executemany("insert into predictions values (null,?,?,?,?,?,?,?,?,?,null)",
                         [(f"a{i}", "r", (scored_at or {}).get(i, str(t[i])), "loan-default", versions[i % len(versions)], float(p[i]), 0, "approve",
                           (inputs or {}).get(i, json.dumps(rows[i]))) for i in range(n)])

def test_a_damaged_store_is_counted_or_one_line(ref, tmp_path):
    from loan_default.drift import drift_command
    from loan_default.schema import DataError
    kw = dict(profile=ref["profile"], threshold=0.4, log=False)
    _store(tmp_path / "two.db", 1_200, versions=("1", "2"), inputs={4: "{not json", 6: "[1, 2]"})
    before = (tmp_path / "two.db").read_bytes()
    rep = drift_command(from_store=f"sqlite:///{tmp_path / 'two.db'}", out=tmp_path / "o1", **kw).report
    c = rep["data_quality"]["contract"]
    assert rep["rows"] == 600 and rep["model"]["rows_other_versions"] == 600 and any("other model versions" in x for x in rep["reasons"])
    assert c["rules"] == {"bad_inputs": dict(rows=2, meaning=c["rules"]["bad_inputs"]["meaning"], excluded=True)} and rep["rows_compared"] == 598
    assert (tmp_path / "two.db").read_bytes() == before
    _store(tmp_path / "time.db", 600, scored_at={7: "garbage"})
    r = run_cli("drift", "--from-store", f"sqlite:///{tmp_path / 'time.db'}", "--profile", ref["profile"], "--no-log", "--out", tmp_path / "o2")
    one_line_error(r, "application_id a7: scored_at 'garbage' is not a date and time")
    with sqlite3.connect(tmp_path / "time.db") as conn: conn.execute("drop table outcomes"); conn.execute("update predictions set scored_at = '2026-11-01'")
    assert drift_command(from_store=f"sqlite:///{tmp_path / 'time.db'}", out=tmp_path / "o3", **kw).report["rows"] == 600   # outcomes are optional
    with sqlite3.connect(tmp_path / "cols.db") as conn: conn.execute("create table predictions (id integer primary key, scored_at timestamp)")
    for url, words in [(f"sqlite:///{tmp_path / 'cols.db'}", "has no column application_id"), (f"sqlite:///{tmp_path}", "is a directory"),
                       ("foo://x/y", "no database driver for 'foo'"), ("postgresql+nodriver://u:secret@127.0.0.1:1/db", r"u:\*\*\*@")]:
        with pytest.raises(DataError, match=words) as e: drift_command(from_store=url, out=tmp_path / "o4", **kw)
        assert "secret" not in str(e.value)
    assert not (tmp_path / "o4").exists()

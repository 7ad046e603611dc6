"""Reasons through the batch engine: the installed `loan-default score --reasons` on a model trained on synthetic rows.

Every decline gets 1-4 reasons with codes from the catalogue, no approval gets any, each text names the row's own
situation and figures (its housing, its share of income, its rate, its grade...), a missing rate and "no default on
file" are never cited, and age never is. Risk factors on every row (mode "all") are labelled as such."""
import json, os
import numpy as np, pandas as pd
import pytest
import mlflow
from conftest import run_cli
from loan_default.reasons import CATALOGUE, BY_CODE, PURPOSES
from loan_default.synth import synthesize

ROWS = 4_000
CITABLE = {r.code for r in CATALOGUE if r.citable}
HOUSING = {"RENT": "you rent your home", "MORTGAGE": "owned with a mortgage", "OWN": "you own your home outright",
           "OTHER": "neither renting nor owning"}

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    "A small model trained on synthetic rows, registered and promoted to @production in a temporary embedded MLflow."
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register, promote
    d = tmp_path_factory.mktemp("mlflow")
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri = f"sqlite:///{d}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.create_experiment("reasons-test", artifact_location=str(d / "artifacts"))
        trained = train_model(synthesize(3000, seed=1, dirty=False), time_budget_s=3)
        logged = log_training(trained, "synthetic.csv", experiment="reasons-test")
        register(logged.run_id, experiment="reasons-test", min_f1=0.3, min_roc_auc=0.7); promote()
    finally:
        if before is None: os.environ.pop("MLFLOW_TRACKING_URI", None)
        else: os.environ["MLFLOW_TRACKING_URI"] = before
    return dict(uri=uri, dir=d, threshold=trained.threshold)

@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    "Synthetic applicants with ids, missing employment lengths and rates, and some aged 62 or more, as CSV."
    df = synthesize(ROWS, seed=21, dirty=False).drop(columns=["loan_status"])
    df.insert(0, "application_id", [f"app-{i}" for i in range(len(df))])
    df.loc[::13, "person_emp_length"] = np.nan
    df.loc[::7, "loan_int_rate"] = np.nan
    df.loc[::11, "person_age"] = 70
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    df.to_csv(path, index=False)
    return df.set_index("application_id"), path

def _scored(store, rows, tmp_path, *flags) -> pd.DataFrame:
    df, path = rows
    out = tmp_path / "scored.parquet"
    r = run_cli("score", "--data", path, "--out", out, *flags, env={"MLFLOW_TRACKING_URI": store["uri"]}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.read_parquet(out).set_index("application_id")
    assert len(got) == len(df) and set(got.index) == set(df.index)
    return got.assign(reasons=got.reasons.map(json.loads)).join(df)

def _money(x): return f"{x:,.0f}"

def _text_matches(x: dict, row) -> bool:
    "The reason's text names this row's own situation and figures."
    t, code = x["text"], x["code"]
    if code == "R01":
        return t.startswith("Income insufficient for amount of credit requested") and \
            f"{100 * row.loan_percent_income:.0f}% of your annual income of {_money(row.person_income)}" in t and _money(row.loan_amnt) in t
    if code == "R02": return _money(row.person_income) in t
    if code == "R03": return HOUSING[row.person_home_ownership] in t
    if code == "R04":
        return t == "Credit application incomplete: length of employment not given" if np.isnan(row.person_emp_length) \
            else f"Length of employment: {row.person_emp_length:g} year" in t
    if code == "R05":
        years = f"{row.cb_person_cred_hist_length:g} year"
        return years in t and (t.startswith("Limited credit experience") == (row.cb_person_cred_hist_length < 5))
    if code == "R06": return row.cb_person_default_on_file == "Y" and "previous default is on file" in t
    if code == "R07": return t == f"Amount of credit requested: a loan of {_money(row.loan_amnt)}"
    if code == "R08": return t == f"Purpose of the loan: {PURPOSES[row.loan_intent]}"
    if code == "R09": return t.startswith(f"Risk grade {row.loan_grade}, assigned from the lender's review of your credit report")
    if code == "R10": return not np.isnan(row.loan_int_rate) and f"Interest rate of {row.loan_int_rate:.2f}".rstrip("0").rstrip(".") + "%" in t
    return False                                                   # R11 (age) and R12 are never cited

def test_declines_get_principal_reasons_and_approvals_none(store, rows, tmp_path):
    got = _scored(store, rows, tmp_path, "--reasons")
    declines, approvals = got[got.decision == "decline"], got[got.decision == "approve"]
    assert len(declines) >= 100 and len(approvals) >= 100, got.decision.value_counts()
    assert (got.decision == np.where(got.probability_of_default >= store["threshold"], "decline", "approve")).all()
    assert all(r == [] for r in approvals.reasons)                                              # no approval carries reasons
    for app, row in declines.iterrows():
        r = row.reasons
        assert 1 <= len(r) <= 4, (app, r)
        assert all(set(x) == {"code", "feature", "text", "points", "kind"} for x in r)
        assert {x["code"] for x in r} <= CITABLE and len({x["code"] for x in r}) == len(r), (app, r)
        assert all(x["kind"] == "adverse_action" and isinstance(x["points"], int) and x["points"] >= 0 for x in r)
        assert [x["points"] for x in r] == sorted((x["points"] for x in r), reverse=True)
        assert all(x["feature"] == BY_CODE[x["code"]].feature for x in r)
        for x in r: assert _text_matches(x, row), (app, x, row.to_dict())
    cited = pd.Series([x["code"] for r in declines.reasons for x in r]).value_counts()
    print(f"\n{len(declines)} declines, {len(approvals)} approvals; reasons cited: {cited.to_dict()}")
    assert {"R01", "R03", "R09"} <= set(cited.index), cited                 # the texts checked above were really exercised

def test_age_and_lenders_gaps_never_cited(store, rows, tmp_path):
    got = _scored(store, rows, tmp_path, "--reasons")
    every = [x for r in got.reasons for x in r]
    assert every and not any(x["code"] in ("R11", "R12") or x["feature"] == "person_age" or "Age" in x["text"] for x in every)
    for _, row in got.iterrows():
        codes = {x["code"] for x in row.reasons}
        if np.isnan(row.loan_int_rate): assert "R10" not in codes                    # a missing rate is the lender's gap
        if row.cb_person_default_on_file == "N": assert "R06" not in codes          # no default on file: never a reason
    old = got[(got.person_age >= 62) & (got.decision == "decline")]
    assert len(old) > 0 and all(1 <= len(r) <= 4 for r in old.reasons)

def test_risk_factors_on_every_row_are_labelled(store, rows, tmp_path):
    "Mode 'all' through the batch engine's entry point: declines keep their reasons, approvals get risk factors labelled so."
    from loan_default.scale import score_command
    df, path = rows
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = store["uri"]
    try:
        declines_only = score_command(path, tmp_path / "d.parquet", reasons=True, progress=False)
        everyone = score_command(path, tmp_path / "a.parquet", reasons="all", progress=False)
    finally:
        if before is None: os.environ.pop("MLFLOW_TRACKING_URI", None)
        else: os.environ["MLFLOW_TRACKING_URI"] = before
    d, a = (pd.read_parquet(x.out).set_index("application_id") for x in (declines_only, everyone))
    assert (d.decision == a.decision).all()
    dec = a.decision == "decline"
    assert (d.reasons[dec] == a.reasons[dec]).all()
    approved = a.reasons[~dec].map(json.loads)
    assert approved.map(len).gt(0).mean() > 0.5
    assert all(x["kind"] == "risk_factor" and x["code"] in CITABLE for r in approved for x in r)
    assert all(x["kind"] == "adverse_action" for r in a.reasons[dec].map(json.loads) for x in r)

def test_reasons_all_flag(store, rows, tmp_path):
    "`score --reasons all` through the CLI: approvals get their risk factors, labelled risk_factor; declines their adverse-action reasons."
    got = _scored(store, rows, tmp_path, "--reasons", "all")
    approvals, declines = got[got.decision == "approve"], got[got.decision == "decline"]
    assert approvals.reasons.map(len).gt(0).mean() > 0.5
    assert all(x["kind"] == "risk_factor" and x["code"] in CITABLE for r in approvals.reasons for x in r)
    assert all(1 <= len(r) <= 4 and all(x["kind"] == "adverse_action" for x in r) for r in declines.reasons)

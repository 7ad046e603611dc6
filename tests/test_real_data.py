"Validation on the real file (../shared/data/credit_risk_dataset.csv): counts reconcile, every impossible row is quarantined."
import json
import pandas as pd
from conftest import run_cli

def test_validate_real_file(real_data, tmp_path):
    out = tmp_path / "val"
    r = run_cli("validate", "--data", real_data, "--out", out)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["rows_in"] == 27_691
    assert report["rows_in"] == report["rows_clean"] + report["rows_rejected"] + report["rows_duplicate"]
    clean = pd.read_csv(out / "clean.csv")
    rejected = pd.read_csv(out / "rejected.csv")
    dups = pd.read_csv(out / "duplicates.csv")
    assert (len(clean), len(rejected), len(dups)) == (report["rows_clean"], report["rows_rejected"], report["rows_duplicate"])
    assert not clean.duplicated().any()
    # missing values in the nullable columns are scored, not rejected
    assert clean["loan_int_rate"].isna().sum() > 2_000 and clean["person_emp_length"].isna().sum() > 500

    raw = pd.read_csv(real_data)
    raw["line"] = range(2, len(raw) + 2)
    impossible_age = raw[(raw.person_age > 100) | (raw.person_age < 18)]
    impossible_emp = raw[(raw.person_emp_length > 60) | (raw.person_emp_length > raw.person_age - 14)]
    assert len(impossible_age) >= 5 and len(impossible_emp) >= 2
    why = rejected.set_index("line")["reasons"]
    for line in impossible_age.line: assert "range:person_age" in why[line]
    for line in impossible_emp.line: assert "emp_length_exceeds_age" in why[line] or "range:person_emp_length" in why[line]
    # and nothing else: every rejected row is one of them
    assert set(why.index) == set(impossible_age.line) | set(impossible_emp.line)
    assert report["missing"]["loan_int_rate"] == raw.loan_int_rate.isna().sum()

def test_stats_on_real_file(real_data, tmp_path):
    r = run_cli("stats", "--data", real_data, "--out", tmp_path / "stats.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "stats.json").read_text())
    assert s["rows"] == 27_691
    assert abs(s["target"]["rate"] - pd.read_csv(real_data).loan_status.mean()) < 1e-12

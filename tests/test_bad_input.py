"""Bad input: every case gets one line on stderr naming the problem and a non-zero exit, never a traceback.

These run the installed console script in a subprocess, exactly as a user or a scheduler would."""
import pytest
from conftest import run_cli
from loan_default.schema import COLUMNS

HEADER = ",".join(c.name for c in COLUMNS)
GOOD = "22,59000,RENT,2.0,PERSONAL,D,3500,16.02,1,0.06,Y,3"

def body(*rows, header=HEADER) -> str: return header + "\n" + "\n".join(rows) + "\n"

def bad(row_edit: str, n_good: int = 3) -> str:
    "A small file whose last row has one problem (so the rejected share is above the 5% limit)."
    return body(*[GOOD] * n_good, row_edit)

def column(name: str, value: str) -> str:
    "GOOD with one column's value replaced."
    fields = GOOD.split(","); fields[[c.name for c in COLUMNS].index(name)] = value
    return ",".join(fields)

CASES = {
    # case: (file content (str or bytes, None = no file), words the message must contain)
    "missing file": (None, "no such file"),
    "empty file": ("", "is empty"),
    "whitespace only": ("\n\n  \n", "is empty"),
    "header only": (HEADER + "\n", "header but no data rows"),
    "missing column": (body(GOOD.rsplit(",", 1)[0], header=HEADER.rsplit(",", 1)[0]), "missing columns: cb_person_cred_hist_length"),
    "extra column": (body(GOOD + ",x", header=HEADER + ",notes"), "unexpected columns: notes"),
    "renamed column": (body(GOOD, header=HEADER.replace("person_age", "age")), "age (did you mean person_age?)"),
    "repeated column": (body(GOOD + ",D", header=HEADER + ",loan_grade"), "repeated columns: loan_grade"),
    "semicolon separated": (body(GOOD.replace(",", ";"), header=HEADER.replace(",", ";")), "';'-separated"),
    "abc as an age": (bad(column("person_age", "abc")), "type:person_age"),
    "fractional age": (bad(column("person_age", "25.5")), "type:person_age"),
    "non-UTF-8 bytes": (body(GOOD).encode() + "RENT,caf\xe9".encode("latin-1"), "not UTF-8 text: byte 0xe9 on line 3"),
    "ragged line, too many fields": (bad(GOOD + ",1,2"), "ragged_line"),
    "ragged line, too few fields": (bad(GOOD.rsplit(",", 2)[0]), "ragged_line"),
    "binary file": (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "binary file"),
    "huge value": (bad(column("person_income", "1e400")), "range:person_income"),
    "huge integer": (bad(column("loan_amnt", "9" * 40)), "range:loan_amnt"),
    # a huge value is one rejected row (every line is one record), never a whole-file parse failure
    "huge field": (bad(column("loan_intent", "X" * 200_000)), "category:loan_intent"),
    "negative income": (bad(column("person_income", "-59000")), "range:person_income"),
    "unknown category": (bad(column("loan_grade", "Z")), "category:loan_grade"),
    "lower-case category": (bad(column("person_home_ownership", "rent")), "category:person_home_ownership"),
    "NaN label": (bad(column("loan_status", "NaN")), "missing:loan_status"),
    "label out of range": (bad(column("loan_status", "2")), "range:loan_status"),
    "impossible employment": (bad(column("person_emp_length", "30")), "emp_length_exceeds_age"),
    "corrupt parquet": (b"PAR1" + b"\x01" * 64 + b"PAR1", "not a readable parquet file"),
}

@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_nonzero(case, tmp_path):
    content, expected = CASES[case]
    path = tmp_path / "data.csv"
    if content is not None: (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    r = run_cli("validate", "--data", path, "--out", tmp_path / "out")
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout

def test_a_directory_is_not_a_file(tmp_path):
    r = run_cli("validate", "--data", tmp_path, "--out", tmp_path / "out")
    assert r.returncode == 1 and "is a directory" in r.stderr

def test_a_few_bad_rows_are_quarantined_not_fatal(tmp_path):
    "Below the limit, bad rows go to rejected.csv with their reasons and original values; the run succeeds."
    import pandas as pd
    rows = [GOOD] * 97 + [column("person_age", "abc"), column("person_income", "-1"), GOOD + ",extra"]
    (tmp_path / "d.csv").write_text(body(*rows))
    r = run_cli("validate", "--data", tmp_path / "d.csv", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv", dtype=str, keep_default_na=False)
    assert rejected["reasons"].tolist() == ["type:person_age", "range:person_income;percent_income_mismatch", "ragged_line(13 fields, expected 12)"]
    assert rejected["person_age"].tolist()[0] == "abc" and rejected["line"].tolist() == ["99", "100", "101"]
    assert rejected["extra_fields"].tolist()[2] == "extra"

def test_reject_limit_is_configurable(tmp_path):
    (tmp_path / "d.csv").write_text(bad(column("loan_grade", "Z")))
    assert run_cli("validate", "--data", tmp_path / "d.csv", "--out", tmp_path / "o", "--max-reject-share", 0.3).returncode == 0
    r = run_cli("validate", "--data", tmp_path / "d.csv", "--out", tmp_path / "o", env={"LD_MAX_REJECT_SHARE": "0.1"})
    assert r.returncode == 1 and "more than the 10.0% limit" in r.stderr
    r = run_cli("validate", "--data", tmp_path / "d.csv", "--out", tmp_path / "o", env={"LD_MAX_REJECT_SHARE": "lots"})
    assert r.returncode == 1 and "LD_MAX_REJECT_SHARE" in r.stderr and "Traceback" not in r.stderr

def test_usage_errors_name_the_option(tmp_path):
    r = run_cli("validate", "--out", tmp_path)
    assert r.returncode == 2 and "--data" in r.stderr and "Traceback" not in r.stderr

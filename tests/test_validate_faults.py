"""Validation under faults, through the installed `loan-default` console script (issue 10, classes 1 and 2).

1. One line, one record: a stray quote (or a NUL, or a quoted line break) costs exactly its own line, which is
   rejected with `broken_quoting` and its line number; it never swallows the lines after it, so `rows_in` stays the
   number of data lines in the file.
2. One run, one folder: the output folder is replaced as a whole, a failed run leaves `report.json` with
   `passed: false` (never an earlier pass) and no stale file, and an output folder holding the input is refused
   before anything is written."""
import hashlib, json, os
import pandas as pd
import pytest
from conftest import run_cli, one_line_error

ROWS = 27_691

def validate(data, out, *args):
    return run_cli("validate", "--data", data, "--out", out, *args)

def report(out) -> dict: return json.loads((out / "report.json").read_text())

def digest(path) -> str: return hashlib.sha256(path.read_bytes()).hexdigest()

def listing(folder) -> dict: return {p.name: digest(p) for p in sorted(folder.iterdir())}

@pytest.fixture(scope="module")
def real_lines(real_data) -> list[str]:
    "The real file's lines (header first), without line ends."
    lines = real_data.read_text().splitlines()
    assert len(lines) == ROWS + 1
    return lines

@pytest.fixture(scope="module")
def baseline(real_data, tmp_path_factory):
    "The real file's own validation: which lines are rejected, which are duplicates (and of what)."
    out = tmp_path_factory.mktemp("baseline") / "out"
    r = validate(real_data, out)
    assert r.returncode == 0, r.stderr
    rej = pd.read_csv(out / "rejected.csv")
    dups = pd.read_csv(out / "duplicates.csv")
    involved = set(rej.line) | set(dups.line) | set(dups.duplicate_of)
    return dict(report=report(out), rejected=set(rej.line), duplicates=set(dups.line), involved=involved)

def free_line(baseline, near: int) -> int:
    "The first line at or after `near` that the real file's validation keeps as clean and unique."
    return next(n for n in range(near, ROWS + 2) if n not in baseline["involved"])

def write_lines(path, lines, end="\n", final=True, bom=False) -> None:
    text = end.join(lines) + (end if final else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())

def assert_only_these_broken(out, baseline, broken: dict, rows_in=ROWS, clean_lines_lost=None):
    "Exit 0, rows_in as counted, each line of `broken` rejected for its own reason, every other line as before."
    r = report(out)
    assert r["passed"] is True
    assert r["rows_in"] == rows_in == r["rows_clean"] + r["rows_rejected"] + r["rows_duplicate"]
    rej = pd.read_csv(out / "rejected.csv", dtype={"line": int}, keep_default_na=False)
    why = rej.set_index("line")["reasons"]
    assert set(why.index) == baseline["rejected"] | set(broken)
    for line, (rule, text) in broken.items():
        if rule == "ragged_line": assert why[line].startswith("ragged_line("), why[line]; continue
        assert why[line] == why[line].split(";")[0] and why[line].startswith(f"{rule}(line {line}:"), why[line]
        assert rej.set_index("line").loc[line, "raw_line"] == text
    assert set(pd.read_csv(out / "duplicates.csv").line) == baseline["duplicates"]
    assert r["rows_clean"] == baseline["report"]["rows_clean"] - (len(broken) if clean_lines_lost is None else clean_lines_lost)
    assert len(pd.read_csv(out / "clean.csv")) == r["rows_clean"]

# where the stray quote goes, as a function of a line's fields, and the line-level rule that rejects the line
QUOTES = {
    "opening a line, never closed": (lambda f: ['"' + f[0]] + f[1:], "broken_quoting"),
    "opening a middle field, never closed": (lambda f: f[:2] + ['"' + f[2]] + f[3:], "broken_quoting"),
    "inside a number": (lambda f: [f[0], f[1][:2] + '"' + f[1][2:]] + f[2:], "broken_quoting"),
    "ending a line": (lambda f: f[:-1] + [f[-1] + '"'], "broken_quoting"),
    "text after a closing quote": (lambda f: f[:2] + ['"' + f[2] + '"x'] + f[3:], "broken_quoting"),
    "two stray quotes inside two fields": (lambda f: [f[0], f[1][:1] + '"' + f[1][1:]] + f[2:4] + ['ED"U'] + f[5:], "broken_quoting"),
    # a well-formed quoted field that swallows commas: legal CSV, so one line with too few fields
    "a quote pair across fields": (lambda f: f[:1] + ['"' + f[1]] + f[2:5] + [f[5] + '"'] + f[6:], "ragged_line"),
}

@pytest.mark.parametrize("where", QUOTES)
def test_a_stray_quote_costs_only_its_line(where, real_lines, baseline, tmp_path):
    line = free_line(baseline, {"opening a line, never closed": 2, "ending a line": ROWS - 50}.get(where, 9_000))
    edit, rule = QUOTES[where]
    lines = list(real_lines)
    lines[line - 1] = ",".join(edit(lines[line - 1].split(",")))
    write_lines(tmp_path / "d.csv", lines)
    r = validate(tmp_path / "d.csv", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert f"{ROWS:,} rows in" in r.stdout
    assert_only_these_broken(tmp_path / "out", baseline, {line: (rule, lines[line - 1])})

def test_many_faults_in_one_crlf_file(real_lines, baseline, tmp_path):
    "Stray quotes at several places, a NUL, a BOM, CRLF line ends, blank lines and no final line end."
    lines = list(real_lines)
    quoted, nul = [free_line(baseline, n) for n in (3, 1_500, 8_000)], [free_line(baseline, n) for n in (10, 20_000)]
    for n in quoted: lines[n - 1] = lines[n - 1].replace(",", ',"', 1)
    for n in nul: lines[n - 1] = lines[n - 1].replace(",", ",\x00", 1)   # one near the top: a damaged line, not a binary file
    blank_after = free_line(baseline, 12_000)
    lines[blank_after:blank_after] = ["", "  "]     # blank lines: not records, but the lines below move down by two
    write_lines(tmp_path / "d.csv", lines, end="\r\n", final=False, bom=True)
    r = validate(tmp_path / "d.csv", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    shifted = lambda n: n + 2 if n > blank_after else n
    moved = dict(baseline, rejected={shifted(n) for n in baseline["rejected"]}, duplicates={shifted(n) for n in baseline["duplicates"]})
    broken = {shifted(n): ("broken_quoting", lines[shifted(n) - 1]) for n in quoted}
    broken |= {shifted(n): ("nul_byte", lines[shifted(n) - 1]) for n in nul}
    assert_only_these_broken(tmp_path / "out", moved, broken)
    rules = report(tmp_path / "out")["rules"]
    assert (rules["broken_quoting"]["rows"], rules["nul_byte"]["rows"]) == (3, 2)

def test_a_quoted_line_break_is_two_broken_lines(real_lines, baseline, tmp_path):
    "A field holding a line break (legal in general CSV, not in this contract) rejects both halves, nothing else."
    line = free_line(baseline, 500)
    lines = list(real_lines)
    f = lines[line - 1].split(",")
    halves = [",".join(f[:2] + ['"' + f[2][:2]]), f[2][2:] + '",' + ",".join(f[3:])]
    lines[line - 1:line] = halves
    write_lines(tmp_path / "d.csv", lines)
    r = validate(tmp_path / "d.csv", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    moved = dict(baseline, rejected={n + 1 if n > line else n for n in baseline["rejected"]},
                 duplicates={n + 1 if n > line else n for n in baseline["duplicates"]})
    assert_only_these_broken(tmp_path / "out", moved, {line: ("broken_quoting", halves[0]), line + 1: ("broken_quoting", halves[1])},
                             rows_in=ROWS + 1, clean_lines_lost=1)

def test_a_broken_header_is_one_line(real_lines, tmp_path):
    lines = list(real_lines)
    lines[0] = lines[0].replace("loan_grade", 'loan_grade"', 1)
    write_lines(tmp_path / "d.csv", lines)
    one_line_error(validate(tmp_path / "d.csv", tmp_path / "out"), "line 1", "header")
    assert report(tmp_path / "out")["passed"] is False

def test_a_failed_run_leaves_no_pass_and_no_stale_file(real_data, real_lines, tmp_path):
    out = tmp_path / "out"
    assert validate(real_data, out, "--clean-format", "parquet").returncode == 0
    assert set(listing(out)) == {"clean.parquet", "rejected.csv", "duplicates.csv", "report.json"}
    assert validate(real_data, out).returncode == 0
    assert set(listing(out)) == {"clean.csv", "rejected.csv", "duplicates.csv", "report.json"}   # no stale parquet
    assert report(out)["passed"] is True

    renamed = tmp_path / "renamed.csv"
    write_lines(renamed, [real_lines[0].replace("loan_grade", "grade")] + real_lines[1:])
    one_line_error(validate(renamed, out), "did you mean loan_grade?")
    assert set(listing(out)) == {"report.json"}
    assert report(out)["passed"] is False and "grade" in report(out)["error"]

    assert validate(real_data, out).returncode == 0 and report(out)["passed"] is True
    one_line_error(validate(tmp_path / "missing.csv", out), "no such file")
    assert set(listing(out)) == {"report.json"} and report(out)["passed"] is False

    assert validate(real_data, out).returncode == 0
    one_line_error(validate(real_data, out, "--max-reject-share", "0.0001"), "break the data contract", "0.0% limit")
    assert set(listing(out)) == {"rejected.csv", "duplicates.csv", "report.json"}   # the evidence, no clean rows
    rep = report(out)
    assert rep["passed"] is False and rep["rows_in"] == ROWS and "limit" in rep["error"]
    assert len(pd.read_csv(out / "rejected.csv")) == rep["rows_rejected"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []   # no temporary folder left

def test_an_output_folder_holding_the_input_is_refused(real_data, tmp_path):
    out = tmp_path / "out"
    assert validate(real_data, out).returncode == 0
    before = listing(out)
    (tmp_path / "link").symlink_to(out)
    (tmp_path / "data").mkdir()
    mine = tmp_path / "data" / "mine.csv"; mine.write_bytes(real_data.read_bytes())
    cases = [(out / "clean.csv", out), (out / "report.json", out), (tmp_path / "link" / "clean.csv", out),
             (out / "clean.csv", tmp_path / "link"), (tmp_path / "data" / ".." / "out" / "clean.csv", out),
             (out, out), (out / "clean.csv", tmp_path)]
    for data, target in cases:
        one_line_error(validate(data, target), "holds the input")
        assert listing(out) == before, (data, target)
    one_line_error(validate(mine, tmp_path / "data"), "holds the input")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mine.csv"] and digest(mine) == digest(real_data)

def test_an_output_that_cannot_be_ours_is_refused(real_data, tmp_path):
    (tmp_path / "file").write_text("a file")
    one_line_error(validate(real_data, tmp_path / "file"), "is a file")
    one_line_error(validate(real_data, tmp_path / "file" / "out"), "is a file")
    assert (tmp_path / "file").read_text() == "a file"
    theirs = tmp_path / "theirs"; theirs.mkdir(); (theirs / "notes.txt").write_text("keep me")
    one_line_error(validate(real_data, theirs), "holds other files")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]

@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_is_one_line(real_data, tmp_path):
    locked = tmp_path / "locked"; locked.mkdir(); locked.chmod(0o500)
    try: one_line_error(validate(real_data, locked / "out"), "not writable")
    finally: locked.chmod(0o700)

def test_stats_never_replaces_its_input(tmp_path, real_data):
    data = tmp_path / "d.csv"; data.write_bytes(real_data.read_bytes())
    one_line_error(run_cli("stats", "--data", data, "--out", data), "not a JSON file")
    assert digest(data) == digest(real_data)
    r = run_cli("stats", "--data", data, "--out", tmp_path / "s.json")
    assert r.returncode == 0 and json.loads((tmp_path / "s.json").read_text())["rows"] == ROWS

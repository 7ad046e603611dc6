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

def listing(folder) -> dict:
    "The files in `folder` and their digests (the project's lock file aside; a temporary folder would show up)."
    return {p.name: digest(p) if p.is_file() else "dir" for p in sorted(folder.iterdir()) if p.name != ".ld-validate.lock"}

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

@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_is_one_line(real_data, tmp_path):
    locked = tmp_path / "locked"; locked.mkdir(); locked.chmod(0o500)
    try: one_line_error(validate(real_data, locked / "out"), "not writable")
    finally: locked.chmod(0o700)

def test_stats_never_replaces_its_input(tmp_path, real_data):
    data = tmp_path / "d.csv"; data.write_bytes(real_data.read_bytes())
    one_line_error(run_cli("stats", "--data", data, "--out", data), "must end in .json")        # refused by its suffix
    named_json = tmp_path / "d.json"; named_json.write_bytes(real_data.read_bytes())        # a CSV whose name passes the suffix check
    one_line_error(run_cli("stats", "--data", named_json, "--out", named_json), "not a JSON file")
    assert digest(data) == digest(real_data) and digest(named_json) == digest(real_data)
    r = run_cli("stats", "--data", data, "--out", tmp_path / "s.json")
    assert r.returncode == 0 and json.loads((tmp_path / "s.json").read_text())["rows"] == ROWS


# ---- the output folder is shared: the project swaps its own files only (issue 10, class 2, second round) ----
OURS = {"clean.csv", "rejected.csv", "duplicates.csv", "report.json"}

def assert_complete_or_absent(out) -> dict | None:
    "report.json is absent, or says passed:false, or passed:true with every file it describes complete."
    if not (out / "report.json").exists(): return None
    r = report(out)
    if r.get("passed"):
        clean = out / "clean.csv"
        assert len(pd.read_csv(clean) if clean.exists() else pd.read_parquet(out / "clean.parquet")) == r["rows_clean"]
        assert len(pd.read_csv(out / "rejected.csv")) == r["rows_rejected"]
        assert len(pd.read_csv(out / "duplicates.csv")) == r["rows_duplicate"]
    return r

def test_other_files_in_the_output_folder_are_never_touched(real_data, real_lines, tmp_path):
    mine = tmp_path / "project"; (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me"); (mine / "sub" / "x.txt").write_text("and me")
    (mine / "report.json").write_text('{"mine": true}')       # a file of the same name as ours: replaced, nothing else
    theirs = {"notes.txt": digest(mine / "notes.txt")}
    assert validate(real_data, mine, "--clean-format", "parquet").returncode == 0
    assert set(listing(mine)) == OURS - {"clean.csv"} | {"clean.parquet", "notes.txt", "sub"}
    assert validate(real_data, mine).returncode == 0 and "clean.parquet" not in listing(mine)   # our stale file goes
    bad = tmp_path / "bad.csv"; write_lines(bad, [real_lines[0].replace("loan_grade", "grade")] + real_lines[1:])
    one_line_error(validate(bad, mine), "grade")
    assert set(listing(mine)) == {"report.json", "notes.txt", "sub"} and report(mine)["passed"] is False
    assert {k: listing(mine)[k] for k in theirs} == theirs and (mine / "sub" / "x.txt").read_text() == "and me"
    # --out . : the user's working folder is written into, never deleted or recreated
    ino = os.stat(mine).st_ino
    r = run_cli("validate", "--data", real_data, "--out", ".", cwd=mine)
    assert r.returncode == 0, r.stderr
    assert os.stat(mine).st_ino == ino and set(listing(mine)) == OURS | {"notes.txt", "sub"}
    assert (mine / "notes.txt").read_text() == "keep me" and report(mine)["passed"] is True

def test_a_long_output_name_works(real_data, tmp_path):
    out = tmp_path / ("o" * 250)
    assert validate(real_data, out).returncode == 0 and set(listing(out)) == OURS

def test_two_runs_into_one_folder_wait_for_each_other(real_data, tmp_path):
    import subprocess, fcntl
    from conftest import CLI, BASE_ENV
    big = tmp_path / "big.csv"; lines = real_data.read_text().splitlines()
    big.write_text("\n".join([lines[0]] + lines[1:] * 4) + "\n")
    out = tmp_path / "out"
    runs = [subprocess.Popen([str(CLI), "validate", "--data", str(d), "--out", str(out), *extra], env=BASE_ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for d, extra in ((big, ["--max-reject-share", "1"]), (real_data, ["--clean-format", "parquet"]))]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    assert [rc for rc, _ in results] == [0, 0], results
    r = assert_complete_or_absent(out)     # the folder holds exactly one run's complete outputs
    assert r["passed"] is True and r["sha256"] in (digest(big), digest(real_data))
    clean = "clean.csv" if r["sha256"] == digest(big) else "clean.parquet"
    assert set(listing(out)) == OURS - {"clean.csv"} | {clean}
    # a run that holds the lock for longer than the wait: one line, and the folder is left as it was
    before = listing(out)
    with open(out / ".ld-validate.lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        t = __import__("time").monotonic()
        one_line_error(run_cli("validate", "--data", real_data, "--out", out, env={"LD_VALIDATE_LOCK_WAIT": "1"}),
                       "another validate run is writing to", "LD_VALIDATE_LOCK_WAIT")
        assert __import__("time").monotonic() - t < 30
    assert listing(out) == before

STEPS = ["validate.started", "validate.written", "validate.moved-rejected.csv", "validate.moved-duplicates.csv",
         "validate.moved-clean.csv", "validate.before-report"]

def test_a_kill_at_any_moment_never_leaves_a_false_pass(real_data, real_lines, tmp_path):
    import subprocess, signal, time
    from conftest import CLI, BASE_ENV
    out = tmp_path / "out"
    assert validate(real_data, out, "--clean-format", "parquet").returncode == 0
    for step in STEPS:   # killed (SIGKILL) exactly at each step of a run
        r = run_cli("validate", "--data", real_data, "--out", out, env={"LD_FAULT_KILL_AT": step})
        assert r.returncode == -signal.SIGKILL, (step, r.returncode, r.stderr)
        assert not (out / "report.json").exists(), step      # no report: neither the last run's nor half of this one
        assert validate(real_data, out).returncode == 0, step  # the next run completes and clears the leftovers
        assert set(listing(out)) == OURS and assert_complete_or_absent(out)["passed"] is True
    big = tmp_path / "big.csv"; big.write_text("\n".join([real_lines[0]] + real_lines[1:] * 4) + "\n")
    for delay in (1.0, 2.0, 3.5):   # and at arbitrary moments of a longer run
        p = subprocess.Popen([str(CLI), "validate", "--data", str(big), "--out", str(out)], env=BASE_ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay); p.send_signal(signal.SIGKILL); p.wait()
        r = assert_complete_or_absent(out)
        assert r is None or r["sha256"] in (digest(big), digest(real_data)), delay   # killed before it took the lock: the last run's
    assert validate(real_data, out).returncode == 0
    assert set(listing(out)) == OURS and report(out)["passed"] is True   # no temporary folder left

def test_inputs_through_links_and_loops(real_data, tmp_path):
    out = tmp_path / "out"; out.mkdir()
    (out / "in.csv").symlink_to(real_data)                       # a link inside --out to a file elsewhere
    one_line_error(validate(out / "in.csv", out), "holds the input")
    assert sorted(p.name for p in out.iterdir()) == ["in.csv"]
    (tmp_path / "la").symlink_to(tmp_path / "lb"); (tmp_path / "lb").symlink_to(tmp_path / "la")
    one_line_error(validate(tmp_path / "la", tmp_path / "o"), "la", "symlink loop")
    one_line_error(validate(real_data, tmp_path / "la"), "la", "symlink loop")
    one_line_error(validate(real_data, tmp_path / "la" / "sub"), "symlink loop")

def test_only_regular_files_are_read(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    one_line_error(run_cli("validate", "--data", tmp_path / "fifo", "--out", tmp_path / "o", timeout=60), "FIFO", "not a regular")
    one_line_error(run_cli("validate", "--data", "/dev/zero", "--out", tmp_path / "o", timeout=60), "/dev/zero", "not a regular")
    assert report(tmp_path / "o")["passed"] is False

def test_parquet_means_what_csv_means(real_data, tmp_path):
    df = pd.read_csv(real_data, dtype=str, keep_default_na=False).head(400)
    df.loc[0:9, "person_emp_length"] = "NA"; df.loc[10:19, "loan_int_rate"] = " nan "
    df.loc[20:29, "person_home_ownership"] = " RENT "; df.loc[30:39, "loan_grade"] = ""
    df.to_csv(tmp_path / "d.csv", index=False); df.to_parquet(tmp_path / "d.parquet")
    reports = {}
    for f in ("d.csv", "d.parquet"):
        assert validate(tmp_path / f, tmp_path / f"o-{f}", "--max-reject-share", "1").returncode == 0
        reports[f] = {k: v for k, v in report(tmp_path / f"o-{f}").items() if k not in ("source", "sha256")}
    assert reports["d.csv"] == reports["d.parquet"]
    assert reports["d.csv"]["missing"]["person_emp_length"] >= 10 and reports["d.csv"]["rules"]["missing:loan_grade"]["rows"] == 10
    lists = df.assign(loan_grade=[["D"]] * len(df), person_age=[[22]] * len(df)); lists.to_parquet(tmp_path / "l.parquet")
    one_line_error(validate(tmp_path / "l.parquet", tmp_path / "ol"), "break the data contract")
    rules = report(tmp_path / "ol")["rules"]
    assert rules["category:loan_grade"]["rows"] == rules["type:person_age"]["rows"] == 400
    import pyarrow as pa, pyarrow.parquet as pq
    t = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(t.append_column("loan_grade", t.column("loan_grade")), tmp_path / "rep.parquet")
    one_line_error(validate(tmp_path / "rep.parquet", tmp_path / "or"), "repeated columns: loan_grade")

def test_a_nul_line_is_a_rejected_row_wherever_it_is(real_lines, baseline, tmp_path):
    for at in (2, 3, 13_000, ROWS + 1):
        lines = list(real_lines); line = free_line(baseline, at) if at <= ROWS else ROWS + 1
        lines[line - 1:line - 1] = ["\x00" * 4096]
        write_lines(tmp_path / "d.csv", lines)
        r = validate(tmp_path / "d.csv", tmp_path / "out")
        assert r.returncode == 0, (at, r.stderr)
        rep = report(tmp_path / "out")
        assert rep["rows_in"] == ROWS + 1 and rep["rules"]["nul_byte"]["rows"] == 1
        rej = pd.read_csv(tmp_path / "out" / "rejected.csv", keep_default_na=False)
        assert rej.loc[rej.reasons.str.startswith("nul_byte"), "line"].tolist() == [line]
    write_lines(tmp_path / "h.csv", [real_lines[0].replace(",", ",\x00", 1)] + real_lines[1:])
    one_line_error(validate(tmp_path / "h.csv", tmp_path / "out"), "binary file", "header")

def test_files_saved_the_wrong_way_get_a_message_that_says_how(real_lines, tmp_path):
    import gzip
    text = "\n".join(real_lines) + "\n"
    cases = {"trailing.csv": ("\n".join(s + "," for s in real_lines).encode(), ["column 13 of the header has no name", "trailing comma"]),
             "semi.csv": (("sep=;\n" + text.replace(",", ";")).encode(), ["sep=;", "';'-separated"]),
             "u16.csv": (text.encode("utf-16"), ["UTF-16", "save it as UTF-8"]),
             "u16le.csv": (text.encode("utf-16-le"), ["UTF-16"]), "u16be.csv": (text.encode("utf-16-be"), ["UTF-16"]),
             "d.csv.gz": (gzip.compress(text.encode()), ["gzip-compressed"])}
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        one_line_error(validate(tmp_path / name, tmp_path / "out"), *words)
        assert report(tmp_path / "out")["passed"] is False

def test_line_numbers_are_the_ones_grep_gives(real_lines, baseline, tmp_path):
    "Excel's sep=, line, line ends converted twice (\\r\\r\\n) and a final Ctrl-Z: counted as a user counts them."
    line = free_line(baseline, 5_000)
    lines = list(real_lines); lines[line - 1] = lines[line - 1].replace(",", ',"', 1)
    (tmp_path / "d.csv").write_bytes(("sep=,\r\r\n" + "\r\r\n".join(lines) + "\r\r\n\x1a").encode())
    r = validate(tmp_path / "d.csv", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    grep_n = (tmp_path / "d.csv").read_bytes().split(b"\n").index(lines[line - 1].encode() + b"\r\r") + 1
    moved = dict(baseline, rejected={n + 1 for n in baseline["rejected"]}, duplicates={n + 1 for n in baseline["duplicates"]})
    assert_only_these_broken(tmp_path / "out", moved, {grep_n: ("broken_quoting", lines[line - 1])})
    assert grep_n == line + 1

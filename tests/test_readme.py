"README.md is generated from nbs/index.ipynb: they must agree, and the one settings table must match the code."
import re, subprocess, sys
from conftest import ROOT

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_readme_settings_table_is_current():
    from loan_default.config import settings_table
    assert settings_table() in (ROOT / "README.md").read_text()

def test_readme_has_one_settings_table():
    "Every variable has one row, in the one table: no second table for the service, Spark or developers."
    rows = re.findall(r"^\| `(LD_[A-Z0-9_]+)`", (ROOT / "README.md").read_text(), re.M)
    assert rows and len(rows) == len(set(rows)), sorted({r for r in rows if rows.count(r) > 1})
    assert sum(l.startswith("| Variable |") for l in (ROOT / "README.md").read_text().splitlines()) == 1

def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first = text[:text.index("make test") + 20]
    assert "make run" in first and len(first) < 1500

def _package_sources():
    return {p.name: p.read_text() for p in (ROOT / "loan_default").glob("*.py") if p.name != "_modidx.py"}

def test_every_variable_the_package_names_is_a_setting_in_the_readme():
    "A variable named in the code (LD_...) that is not a Settings field, or missing from the README, is a setting nobody can find."
    from loan_default.config import Settings
    readme = (ROOT / "README.md").read_text()
    found = [m for text in _package_sources().values() for m in re.findall(r"[\"'`](LD_[A-Z0-9_]+\*?)", text)]
    named, groups = {m for m in found if not m.endswith("*")}, {m[:-1] for m in found if m.endswith("*")}   # `LD_SPARK_*`: a group
    fields = {f"LD_{n.upper()}" for n in Settings.model_fields}
    assert len(named) >= 5, f"found only {sorted(named)}: the pattern is broken"
    assert sorted(named - fields) == []
    assert sorted(g for g in groups if not any(f.startswith(g) for f in fields)) == []
    assert sorted(v for v in fields if f"`{v}`" not in readme) == []

def test_no_module_reads_an_ld_variable_around_the_settings():
    "Only config.Settings reads LD_ variables: a module calling os.environ / os.getenv for one bypasses its validation and the table."
    read = r"(?:environ(?:\.get)?|getenv)\s*[\(\[]\s*"
    found = {}
    for name, text in _package_sources().items():
        consts = {n for line in re.findall(r"^([\w, ]+)=.*[\"']LD_", text, re.M) for n in re.findall(r"\w+", line)}
        hits = re.findall(read + r"[\"'](LD_\w+)", text) + [c for c in consts if re.search(read + rf"{c}\b", text)]
        if hits: found[name] = hits
    assert found == {}

def _code_spans(text: str) -> list[str]:
    "The inline code and the lines of code blocks of a markdown text (table escapes `\\|` undone)."
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S))
    return [s.replace("\\|", "|").strip() for s in inline + [l for b in blocks for l in b.splitlines()]]

def test_readme_commands_work_as_printed():
    "After `make run`, `loan-default` and `mlflow` are not on PATH: the README types them as `.venv/bin/...` (or make)."
    spans = _code_spans((ROOT / "README.md").read_text())
    bare = [s for s in spans if re.match(r"(loan-default|mlflow|jupyter|nbdev_\w+|pytest|python3?|tools/\S+|benchmarks/\S+) ", s)]
    assert len(spans) > 50 and bare == []

def test_readme_loan_default_commands_and_options_exist():
    "Every `.venv/bin/loan-default COMMAND --option` in the README names a command and options it has (not hidden ones)."
    import click
    from loan_default.cli import cli
    wrong = []
    for s in _code_spans((ROOT / "README.md").read_text()):
        if not s.startswith(".venv/bin/loan-default"): continue
        words = s.split()[1:]
        command = cli.commands.get(words[0]) if words and not words[0].startswith("-") else cli
        if command is None: wrong.append(s); continue
        opts = {"-h", "--help"} | {o for p in command.params if isinstance(p, click.Option) and not p.hidden for o in p.opts}
        wrong += [f"{s}: {w}" for w in (w.strip("[]") for w in words) if w.startswith("-") and w not in opts]
    assert wrong == []

def test_readme_make_targets_exist():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    used = {m for s in _code_spans((ROOT / "README.md").read_text()) for m in re.findall(r"^make ([\w-]+)", s)}
    assert {"run", "test", "lab", "docs", "export"} <= used and sorted(used - targets) == []

def test_make_lab_runs_as_root_and_takes_lab_args():
    r = subprocess.run(["make", "-n", "-o", ".venv/.installed", "lab", "LAB_ARGS=--ip 0.0.0.0 --no-browser"],
                       cwd=ROOT, capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if "jupyter lab" in l]
    assert r.returncode == 0 and len(line) == 1 and line[0].endswith("--ip 0.0.0.0 --no-browser"), r.stdout + r.stderr
    import os
    assert ("--allow-root" in line[0]) == (os.getuid() == 0)

def test_ci_workflow_and_badge():
    "GitHub runs `bash .ci/run` on pushes and pull requests, the README shows its badge, and the docs publish only after it passed."
    import yaml
    wf = lambda name: yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    ci, docs = wf("ci.yaml"), wf("docs.yaml")
    on = lambda w: w.get("on", w.get(True))                      # YAML 1.1 reads the key `on` as True
    assert ci["name"] == "ci" and {"push", "pull_request"} <= set(on(ci))
    steps = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert "bash .ci/run" in steps
    assert set(on(docs)) == {"workflow_run"} and on(docs)["workflow_run"]["workflows"] == ["ci"]
    assert "conclusion == 'success'" in docs["jobs"]["build"]["if"] and docs["jobs"]["deploy"]["needs"] == "build"
    readme = (ROOT / "README.md").read_text()
    assert "/actions/workflows/ci.yaml/badge.svg" in readme[:600]

def test_default_ports_are_distinct_and_documented():
    "The API (LD_SERVE_PORT) and the docs server (tools/docs.py --serve) can run at once, and the README gives both."
    from loan_default.config import Settings
    api = Settings.model_fields["serve_port"].default
    docs = int(re.search(r"^DOCS_PORT = (\d+)", (ROOT / "tools" / "docs.py").read_text(), re.M)[1])
    readme = (ROOT / "README.md").read_text()
    assert (api, docs) == (8000, 8001)
    assert f"<http://127.0.0.1:{docs}>" in readme and f"<http://localhost:{api}/docs>" in readme

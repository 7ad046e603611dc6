"README.md is generated from nbs/index.ipynb: they must agree, and the settings table must match the code."
import subprocess, sys
from conftest import ROOT

def test_readme_matches_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_readme_settings_table_is_current():
    from loan_default.config import settings_table
    assert settings_table() in (ROOT / "README.md").read_text()

def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first = text[:text.index("make test") + 20]
    assert "make run" in first and len(first) < 1500

def test_readme_service_settings_table_is_current():
    from loan_default.serve import serve_settings_table
    readme = (ROOT / "README.md").read_text()
    for row in serve_settings_table().splitlines()[2:]:
        if "`LD_MODEL_NAME`" in row: continue          # listed once, in the main table
        assert row in readme, row

def test_every_variable_the_package_reads_is_in_the_readme():
    "A variable named in the code (LD_...) and missing from the README is a setting nobody can find."
    import re
    readme = (ROOT / "README.md").read_text()
    named = {m for p in (ROOT / "loan_default").glob("*.py") if p.name != "_modidx.py"
             for m in re.findall(r"[\"'`](LD_[A-Z0-9_]+)", p.read_text())}
    test_hooks = {"LD_FAULT_KILL_AT"}                   # a crash-injection hook for the fault tests, not a setting
    assert named - test_hooks, "found no LD_ variables at all: the pattern is broken"
    assert sorted(v for v in named - test_hooks if f"`{v}`" not in readme) == []

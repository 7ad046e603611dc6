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

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

"Shared fixtures: the real data (required in CI), and the project's console script."
import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "credit_risk_dataset.csv"
CLI = Path(sys.executable).parent / "loan-default"

@pytest.fixture(scope="session")
def real_data() -> Path:
    "The real dataset beside the project: CI (LD_REQUIRE_REAL_DATA=1) fails without it, a user's machine skips."
    if REAL_DATA.exists(): return REAL_DATA
    from loan_default.config import get_settings
    if get_settings().require_real_data: pytest.fail(f"LD_REQUIRE_REAL_DATA is set but {REAL_DATA} does not exist")
    pytest.skip(f"real data not found at {REAL_DATA} (put the shared data folder beside the project to run this)")

def run_cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    "Run the installed `loan-default` console script as a user would."
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})

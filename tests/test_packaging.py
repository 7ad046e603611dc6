"""The job notebooks are kept once, in nbs/jobs/: a build of the package copies them in (setup.py's build_py), and
the installed package finds them from any working folder; a checkout (editable install) reads nbs/jobs/ itself."""
import subprocess, sys, zipfile
from conftest import ROOT

def test_job_notebooks_are_tracked_once():
    tracked = subprocess.run(["git", "ls-files", "loan_default/jobs", "nbs/jobs"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert tracked and all(p.startswith("nbs/jobs/") for p in tracked), tracked

def test_a_built_package_carries_the_jobs_and_finds_them(tmp_path):
    "Build a wheel from the tracked files alone (as a fresh clone has them), install it apart, and ask it for its jobs."
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    subprocess.run(["tar", "-cf", str(tmp_path / "src.tar"), *[f for f in files if f and (ROOT / f).exists()]], cwd=ROOT, check=True)
    src.mkdir(); subprocess.run(["tar", "-xf", str(tmp_path / "src.tar")], cwd=src, check=True)
    assert not (src / "loan_default" / "jobs").exists()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("loan_default-*.whl"))
    jobs = sorted((ROOT / "nbs" / "jobs").glob("*.ipynb"))
    with zipfile.ZipFile(wheel) as z:
        for nb in jobs: assert z.read(f"loan_default/jobs/{nb.name}") == nb.read_bytes(), nb.name
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    code = "import sys; sys.path.insert(0, sys.argv[1]); from loan_default.pipeline import job_path, jobs_dir; print(jobs_dir()); print(job_path('train'))"
    out = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(site / "loan_default" / "jobs"), str(site / "loan_default" / "jobs" / "train.ipynb")]

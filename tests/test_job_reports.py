"""Executed job notebooks read as reports: a real pipeline run (the `loan-default pipeline` console script on the small
synthetic file, embedded MLflow in the test's folder) leaves each job as .ipynb and .html, figures as PNG outputs, no
stderr stream (warnings and progress bars go to <job>.kernel.log), and both files in the training run's artifacts."""
import json, re
import pytest
from conftest import run_cli, SYNTHETIC_GATES

JOBS = ("validate", "stats", "train", "register")

@pytest.fixture(scope="module")
def pipeline_run(synthetic_csv, tmp_path_factory):
    "One pipeline run shared by this file's tests (the short search keeps it to about half a minute)."
    d = tmp_path_factory.mktemp("job-reports")
    r = run_cli("pipeline", "--data", synthetic_csv, "--time-budget", 3, "--out", d / "run", cwd=d,
                env={"MLFLOW_TRACKING_URI": None, "MLFLOW_REGISTRY_URI": None, "LD_MODEL_NAME": "job-reports", **SYNTHETIC_GATES})
    assert r.returncode == 0, r.stderr
    return d

def _outputs(path) -> list:
    import nbformat                                   # its reader joins the saved text's lines
    return [o for cell in nbformat.read(path, as_version=4).cells for o in cell.get("outputs", [])]

def test_train_job_holds_figures_as_png_and_no_stderr(pipeline_run):
    outputs = _outputs(pipeline_run / "run" / "jobs" / "train.ipynb")
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) >= 5, [list(o.get("data", o)) for o in outputs]           # ROC, PR, calibration, scores, importance
    assert not any(o.get("data", {}).get("text/plain", "").startswith("<Figure size") and "image/png" not in o["data"] for o in outputs)
    text = "".join(o.get("text", "") for o in outputs)
    assert "Chosen: lightgbm" in text                                                # the search summary says what was chosen and why

def test_no_job_writes_to_stderr_in_its_notebook(pipeline_run):
    jobs = pipeline_run / "run" / "jobs"
    for job in JOBS:
        streams = [o for o in _outputs(jobs / f"{job}.ipynb") if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        assert not streams, f"{job}: {streams}"
    assert "TqdmWarning" in (jobs / "train.kernel.log").read_text()                 # the noise went to the log, not away unseen

def test_register_job_shows_the_gates_in_words(pipeline_run):
    outputs = _outputs(pipeline_run / "run" / "jobs" / "register.ipynb")
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "test ROC AUC" in html and ">passed<" in html

def test_each_job_has_a_self_contained_html_page_logged_to_its_run(pipeline_run):
    import mlflow
    jobs = pipeline_run / "run" / "jobs"
    page = (jobs / "train.html").read_text()
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', page)) >= 5      # the figures are in the page
    assert "<script src=" not in page                                                # nothing loaded from the network
    assert all((jobs / f"{job}.html").exists() for job in JOBS)
    run_id = json.loads((pipeline_run / "run" / "train.json").read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline_run}/mlflow.db")
    logged = {a.path for a in client.list_artifacts(run_id, "jobs")}
    assert logged == {f"jobs/{job}.{ext}" for job in JOBS for ext in ("ipynb", "html")}, logged

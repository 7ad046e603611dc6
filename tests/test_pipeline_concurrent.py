"""Two `loan-default pipeline` runs started together in one folder both succeed, and the registry stays consistent.

They used to fail with "Kernel didn't respond in 60 seconds": on the ipc transport, jupyter_client names a kernel's
sockets `kernel-ipc-1..5` in the working folder, so the two runs' kernels took the same files. Then both migrated
the fresh embedded store at once, and both wrote the synthetic data to the same file."""
import subprocess, time
from pathlib import Path
from conftest import BASE_ENV, CLI

def test_two_pipelines_in_one_folder(tmp_path):
    env = {**BASE_ENV, "LD_DATA_PATH": str(tmp_path / "absent.csv"), "LD_SYNTHETIC_PATH": str(tmp_path / "data" / "synth.csv"),
           "LD_SYNTHETIC_ROWS": "2000", "LD_TIME_BUDGET_S": "2", "LD_SYNTHETIC_MIN_F1": "0.3", "LD_SYNTHETIC_MIN_ROC_AUC": "0.7",
           "LD_GATE_TOLERANCE": "1.0", "LD_MODEL_NAME": "two-at-once"}
    for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"): env.pop(k, None)   # the embedded default: ./mlflow.db
    procs = [subprocess.Popen([str(CLI), "pipeline"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert err.strip() == "", err                                  # nothing on stderr: no kernel or MLflow chatter
        assert "registered two-at-once version" in out, out
    assert not list(tmp_path.glob("kernel-ipc*"))                      # no sockets left in the user's folder
    assert len(list((tmp_path / "runs").iterdir())) == 2               # each run its own folder

    from mlflow import MlflowClient
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = {v.version: v for v in c.search_model_versions("name = 'two-at-once'")}
    assert sorted(map(int, versions)) == [1, 2]
    assert {v.tags["registration"] for v in versions.values()} == {"complete"}
    assert len({v.run_id for v in versions.values()}) == 2
    assert dict(c.get_registered_model("two-at-once").aliases) == {"staging": 2}   # the newest one, whichever finished first
    assert len(c.search_runs([c.get_experiment_by_name("loan-default").experiment_id])) == 2

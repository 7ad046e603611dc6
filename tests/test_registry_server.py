"""The life of a model against a real `mlflow server` on loopback: pipeline, gates, registry aliases, promote, rollback.

The server is started by the `mlflow_server` fixture (one worker, job execution off, proxied artifacts) and stopped by PID."""
import json
import pandas as pd
import pytest
from conftest import run_cli, one_line_error, SYNTHETIC_GATES, CLI, BASE_ENV
from loan_default.schema import FEATURES

@pytest.fixture
def env(mlflow_server):
    return {"MLFLOW_TRACKING_URI": mlflow_server, "LD_MODEL_NAME": "life-of-a-model", **SYNTHETIC_GATES}

def client(uri):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=uri, registry_uri=uri)

def test_model_life(env, mlflow_server, synthetic_csv, tmp_path):
    c = client(mlflow_server)
    r = run_cli("pipeline", "--data", synthetic_csv, "--time-budget", 5, "--out", tmp_path / "run1", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "registered life-of-a-model version 1 as @staging" in r.stdout
    train = json.loads((tmp_path / "run1" / "train.json").read_text())
    run = c.get_run(train["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")      # proxied through the server
    assert {a.path for a in c.list_artifacts(train["run_id"], "jobs")} >= {"jobs/validate.ipynb", "jobs/stats.ipynb", "jobs/train.ipynb"}
    assert run.data.tags["data.sha256"] and run.data.params["data.rows_in"] == "3000"
    assert run.data.tags["mlflow.source.name"] == "jobs/train.ipynb" and "`synth.csv`" in run.data.tags["mlflow.note.content"]
    v1 = c.get_model_version_by_alias("life-of-a-model", "staging")
    assert v1.version == "1" and v1.tags["gate.passed"] == "true" and float(v1.tags["gate.f1"]) >= 0.3
    assert v1.tags["model_card.html"].startswith("runs:/") and "model_card.error" not in v1.tags, v1.tags

    # the same run again: no second version
    r = run_cli("register", "--run-id", train["run_id"], env=env)
    assert r.returncode == 0 and "nothing changed" in r.stdout
    assert len(c.search_model_versions("name = 'life-of-a-model'")) == 1

    one_line_error(run_cli("rollback", env=env), "no @production version")
    r = run_cli("promote", env=env)
    assert r.returncode == 0 and "version 1 (was unset)" in r.stdout, r.stderr
    one_line_error(run_cli("promote", env=env), "no @staging version")
    one_line_error(run_cli("rollback", env=env), "no previous version")

    # the registered pyfunc gives probabilities through MLflow's own CLI
    rows = pd.read_csv(synthetic_csv).dropna().head(5)[FEATURES]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    import subprocess
    out = subprocess.run([str(CLI.parent / "mlflow"), "models", "predict", "-m", "models:/life-of-a-model@production",
                          "-i", str(tmp_path / "rows.csv"), "-t", "csv", "--env-manager", "local", "-o", str(tmp_path / "pred.json")],
                         capture_output=True, text=True, env={**BASE_ENV, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    pred = pd.DataFrame(json.loads((tmp_path / "pred.json").read_text())["predictions"])
    assert list(pred.columns) == ["probability_of_default", "predicted_default"] and len(pred) == 5
    assert pred.probability_of_default.between(0, 1).all() and set(pred.predicted_default) <= {0, 1}

    # a challenger is compared with production on its own test split; the gate figures are tags on the version
    r = run_cli("train", "--data", synthetic_csv, "--time-budget", 5, "--seed", 7, "--out", tmp_path / "run2", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    run2 = json.loads((tmp_path / "run2" / "train.json").read_text())["run_id"]
    assert c.get_run(run2).data.tags["mlflow.source.name"] == "loan-default train"
    r = run_cli("register", env={**env, "LD_GATE_TOLERANCE": "1.0"})              # the latest run, whatever its figures
    assert r.returncode == 0 and "version 2 (@staging)" in r.stdout, r.stderr
    v2 = c.get_model_version("life-of-a-model", "2")
    assert v2.run_id == run2 and v2.tags["gate.champion_version"] == "1" and "gate.champion_f1_on_split" in v2.tags
    assert run_cli("promote", env=env).returncode == 0
    assert c.get_model_version_by_alias("life-of-a-model", "production").version == "2"
    r = run_cli("rollback", env=env)
    assert r.returncode == 0 and "back to version 1" in r.stdout
    assert c.get_model_version_by_alias("life-of-a-model", "production").version == "1"
    # every version's page says why it got in and links its card; the model's page says what it is
    assert c.get_registered_model("life-of-a-model").description
    for v in c.search_model_versions("name = 'life-of-a-model'"):
        assert (v.description or "").startswith("Gates passed: ") and "model_card/model_card.html" in v.description, (v.version, v.description)
    assert "**Against `@production` version 1**" in c.get_model_version("life-of-a-model", "2").description

def test_refusal_registers_nothing(mlflow_server, synthetic_csv, tmp_path):
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "LD_MODEL_NAME": "refused-model", "LD_MIN_F1": "0.99"}
    r = run_cli("train", "--data", synthetic_csv, "--time-budget", 3, "--out", tmp_path / "run", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    one_line_error(run_cli("register", env=env), "refused, nothing registered", "below the minimum 0.99")
    from mlflow.exceptions import MlflowException
    with pytest.raises(MlflowException): client(mlflow_server).get_registered_model("refused-model")
    one_line_error(run_cli("pipeline", "--data", synthetic_csv, "--time-budget", 3, "--out", tmp_path / "run2", cwd=tmp_path, env=env),
                   "job register failed", "nothing registered")

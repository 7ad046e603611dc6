"Bad input to training and the registry: one line naming the problem, a non-zero exit, nothing half-registered."
from conftest import run_cli, one_line_error

def test_training_data_that_fails_validation(tmp_path):
    from loan_default.synth import synthesize
    df = synthesize(200, seed=1)
    df.loc[:50, "loan_grade"] = "Z"
    df.to_csv(tmp_path / "bad.csv", index=False)
    r = run_cli("pipeline", "--data", tmp_path / "bad.csv", "--out", tmp_path / "run", cwd=tmp_path,
                env={"MLFLOW_TRACKING_URI": None})
    one_line_error(r, "job validate failed", "category:loan_grade")
    assert not (tmp_path / "mlflow.db").exists()   # nothing was trained or logged

def test_tracking_uri_that_does_not_answer(tmp_path):
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    for cmd in (["register"], ["promote"], ["rollback"]):
        one_line_error(run_cli(*cmd, env=env, cwd=tmp_path), "MLflow tracking server at http://127.0.0.1:9 does not answer")

def test_unknown_model_name(tmp_path):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    one_line_error(run_cli("promote", "--name", "no-such-model", env=env, cwd=tmp_path), "no registered model named 'no-such-model'")
    one_line_error(run_cli("rollback", "--name", "no-such-model", env=env, cwd=tmp_path), "no registered model named 'no-such-model'")
    one_line_error(run_cli("register", env=env, cwd=tmp_path), "train a model first")
    one_line_error(run_cli("register", "--run-id", "abc123", env=env, cwd=tmp_path), "no run with id 'abc123'")

def test_unknown_job(tmp_path):
    one_line_error(run_cli("run", "nope", "--out", tmp_path, cwd=tmp_path), "no job named 'nope'")

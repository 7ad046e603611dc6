"""A real Spark standalone cluster: a master and two workers (1 core each) started from pyspark's own distribution on
127.0.0.1 (benchmarks/procs.py `SparkCluster`, each worker's folders under a temporary directory, stopped by PID).

Against it, on rows of the real file and a small model trained on them: `loan-default score` and `loan-default drift
--engine spark --master spark://...` give the pandas engine's probabilities (to 1e-12) and PSI (to 1e-9); the tasks
ran on both workers; a path on this machine only is refused with one line naming the option unless
LD_SPARK_SHARED_PATHS lists its folder; executors that import another loan_default, or none, stop the command.

Without pyspark these tests are skipped, unless LD_REQUIRE_SPARK=1 (CI), which makes that a failure."""
import json, os, shutil, sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
import pytest

from conftest import skip_without_spark
skip_without_spark()

from conftest import run_cli, one_line_error
from procs import SparkCluster
from loan_default.schema import FEATURES, TARGET, DataError
from loan_default.inference import ID, SCORE, DECISION

ROWS = 4_000

@pytest.fixture(scope="module")
def cluster():
    "A master and two workers of 1 core and 1 GiB each, in their own temporary folder (never the venv)."
    c = SparkCluster(tempfile.mkdtemp(prefix="ld-spark-"), workers=2, cores=1, memory="1g").start()
    try: yield c
    finally:
        c.stop()
        shutil.rmtree(c.root, ignore_errors=True)

@pytest.fixture(scope="module")
def shared():
    "The folder the cluster's nodes share: on loopback every folder is, so LD_SPARK_SHARED_PATHS names this one."
    d = Path(tempfile.mkdtemp(prefix="ld-spark-shared-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)

@pytest.fixture(scope="module")
def model(real_data, shared, tmp_path_factory):
    "A small model trained on 3,000 contract-clean real rows, registered and promoted to @production in a temporary MLflow; and 4,000 other real rows (with outcomes) to score."
    import mlflow
    from loan_default.validate import validate_file
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register, promote
    d = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{d}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri          # conftest's autouse fixture restores it after this file
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("spark-cluster-test", artifact_location=str(d / "artifacts"))
    clean = validate_file(real_data).clean.reset_index(drop=True)
    train = clean.sample(3_000, random_state=1)
    trained = train_model(train, time_budget_s=3)
    logged = log_training(trained, str(real_data), experiment="spark-cluster-test")
    register(logged.run_id, experiment="spark-cluster-test", min_f1=0.3, min_roc_auc=0.7); promote()
    rows = clean.drop(index=train.index).sample(ROWS, random_state=2)[FEATURES + [TARGET]].reset_index(drop=True)
    rows = rows.astype({c: "float64" for c in rows.columns if c in FEATURES and rows[c].dtype.kind in "iuf"} | {TARGET: "int64"})
    rows.to_parquet(shared / "rows.parquet", index=False)
    return dict(uri=uri, rows=shared / "rows.parquet", frame=rows, trained=trained)

def _env(model, shared) -> dict:
    return {"MLFLOW_TRACKING_URI": model["uri"], "MLFLOW_REGISTRY_URI": model["uri"], "LD_SPARK_SHARED_PATHS": str(shared)}

def _by_id(path) -> pd.DataFrame:
    out = pd.read_parquet(path)
    return out.assign(_n=out[ID].astype("int64")).sort_values("_n").reset_index(drop=True)

def test_cluster_is_up(cluster):
    "Two workers ALIVE with 1 core each, their work folders under the cluster's temporary root."
    s = cluster.status()
    assert s["status"] == "ALIVE" and s["aliveworkers"] == 2 and s["cores"] == 2, s
    assert sorted(w["cores"] for w in s["workers"]) == [1, 1] and all(w["state"] == "ALIVE" for w in s["workers"])
    assert len(cluster.pids) == 3 and all((cluster.root / f"worker{i}" / "work").is_dir() for i in (1, 2))
    assert not str(cluster.root).startswith(str(Path(sys.executable).parents[1]))

def test_score_on_the_cluster(cluster, model, shared):
    "`loan-default score --engine spark --master spark://...`: the pandas engine's probabilities to 1e-12, the same decisions, tasks on both workers."
    from loan_default.scale import score_command
    env = _env(model, shared)
    score_command(model["rows"], shared / "pandas.parquet", engine="pandas", progress=False)     # the reference, in this process
    s = run_cli("score", "--data", model["rows"], "--out", shared / "spark", "--engine", "spark", "--master", cluster.master, env=env)
    assert s.returncode == 0, s.stderr
    assert f"scored {ROWS:,} rows" in s.stdout and "on spark" in s.stdout, s.stdout
    A, B = _by_id(shared / "pandas.parquet"), _by_id(shared / "spark")
    assert A._n.tolist() == B._n.tolist() == list(range(ROWS))
    np.testing.assert_allclose(B[SCORE], A[SCORE], rtol=0, atol=1e-12)
    assert (A[DECISION] == B[DECISION]).all() and 0 < A[DECISION].sum() < ROWS
    np.testing.assert_allclose(A[SCORE], model["trained"].model.predict_proba(model["frame"][FEATURES]), rtol=0, atol=1e-12)
    # the job ran as an application of this master, with an executor on each worker (each writes into its own work folder)
    assert any(a["name"] == "loan-default" for a in cluster.status()["completedapps"])
    for i in (1, 2): assert any((cluster.root / f"worker{i}" / "work").glob("app-*/*/stderr")), f"no executor ran on worker {i}"

def test_drift_on_the_cluster(cluster, model, shared, tmp_path):
    "`loan-default drift --engine spark --master spark://...`: the pandas engine's PSI to 1e-9, same status, rows and data quality."
    from loan_default.drift import drift_command
    env = _env(model, shared)
    drift_command(current=model["rows"], out=tmp_path / "pandas", log=False)                      # the reference, in this process
    # the report is written by the driver from the counts: a local --out is fine; the executors read --current (shared)
    s = run_cli("drift", "--current", model["rows"], "--out", tmp_path / "spark", "--no-log", "--engine", "spark", "--master", cluster.master, env=env)
    assert s.returncode == 0, s.stderr
    a, b = (json.loads((tmp_path / k / "report.json").read_text()) for k in ("spark", "pandas"))
    assert a["engine"] == "spark" and a["rows"] == b["rows"] == ROWS and a["status"] == b["status"]
    assert set(a["psi"]) == set(b["psi"]) and "score" in b["psi"] and len(b["psi"]) > len(FEATURES) // 2
    for k in b["psi"]: assert abs(a["psi"][k] - b["psi"][k]) <= 1e-9, (k, a["psi"][k], b["psi"][k])
    assert a["data_quality"] == b["data_quality"]
    for k, v in b["performance"]["overall"].items(): assert abs(a["performance"]["overall"][k]["value"] - v["value"]) <= 1e-9, k

def test_local_paths_refused_on_a_cluster(cluster, model, shared, tmp_path):
    "A path on this machine only (plain or file://), for the executors to read or write: one line naming the option, before Spark starts."
    env = _env(model, shared)
    r = run_cli("score", "--data", model["rows"], "--out", tmp_path / "out", "--engine", "spark", "--master", cluster.master, env=env)
    one_line_error(r, "--out", str(tmp_path / "out"), "LD_SPARK_SHARED_PATHS", cluster.master)
    shutil.copy(model["rows"], tmp_path / "rows.parquet")
    r = run_cli("score", "--data", f"file://{tmp_path}/rows.parquet", "--out", shared / "x", "--engine", "spark", "--master", cluster.master, env=env)
    one_line_error(r, "--data", "LD_SPARK_SHARED_PATHS")
    r = run_cli("drift", "--current", tmp_path / "rows.parquet", "--out", tmp_path / "d", "--no-log", "--engine", "spark", "--master", cluster.master, env=env)
    one_line_error(r, "--current", "LD_SPARK_SHARED_PATHS")
    r = run_cli("score", "--data", model["rows"], "--out", shared / "y", "--engine", "spark", "--master", cluster.master,
                env=env | {"LD_SPARK_SHARED_PATHS": None})
    one_line_error(r, "--data", "on this machine only")
    assert not (shared / "x").exists() and not (shared / "y").exists() and not (tmp_path / "out").exists()

def _fake_package(folder: Path, body: str) -> Path:
    "A folder holding another `loan_default` package (`body` its __init__), to put first on the executors' PYTHONPATH."
    (folder / "loan_default").mkdir(parents=True)
    (folder / "loan_default" / "__init__.py").write_text(body)
    return folder

def test_executors_environment_checked(cluster, model, tmp_path):
    "The executors run the driver's Python and import this loan_default; another version, or a package that does not import, stops the session with one line."
    import loan_default
    from loan_default import scale
    spark = scale.spark_session(cluster.master, app_name="ld-env-check")        # passes check_executors
    try:
        facts = scale.check_executors(spark)
        assert {f["python"] for f in facts} == {sys.executable} and {f["version"] for f in facts} == {loan_default.__version__}
        assert spark.sparkContext.master == cluster.master
    finally: spark.stop()
    old = _fake_package(tmp_path / "old", '__version__ = "0.0.0-old"\n')
    with pytest.raises(DataError) as e:
        scale.spark_session(cluster.master, app_name="ld-env-old", conf={"spark.executorEnv.PYTHONPATH": str(old)})
    msg = str(e.value)
    assert msg.startswith(f"Spark executors run loan_default 0.0.0-old but the driver runs {loan_default.__version__}") and "\n" not in msg, msg
    broken = _fake_package(tmp_path / "broken", 'raise ImportError("half-installed on this node")\n')
    with pytest.raises(DataError) as e:
        scale.spark_session(cluster.master, app_name="ld-env-broken", conf={"spark.executorEnv.PYTHONPATH": str(broken)})
    msg = str(e.value)
    assert msg.startswith("Spark executors cannot import loan_default") and "half-installed on this node" in msg and sys.executable in msg, msg
    assert "\n" not in msg
    # each refused session was stopped: the master shows no application still holding the cluster's cores
    import time
    deadline = time.monotonic() + 30
    while cluster.status()["activeapps"] and time.monotonic() < deadline: time.sleep(0.5)
    assert cluster.status()["activeapps"] == []

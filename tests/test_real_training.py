"""The whole pipeline on the real file, in embedded mode (MLFLOW_TRACKING_URI unset: mlflow.db and mlruns/ in the
working folder), with the default gates: the model must reach the issue's figures on the untouched test split."""
import json
from conftest import run_cli

def test_pipeline_on_real_data_embedded(real_data, tmp_path):
    r = run_cli("pipeline", "--data", real_data, "--out", tmp_path / "run", cwd=tmp_path,
                env={"MLFLOW_TRACKING_URI": None, "LD_MIN_F1": None, "LD_MIN_ROC_AUC": None}, timeout=900)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()
    train = json.loads((tmp_path / "run" / "train.json").read_text())
    test = train["test"]
    print(f"real data, test split: {test}")
    assert test["roc_auc"] >= 0.95 and test["f1"] >= 0.84 and test["brier"] <= 0.05
    report = json.loads((tmp_path / "run" / "validation" / "report.json").read_text())
    assert abs(test["n_rows"] - report["rows_clean"] * 0.2) <= 2     # every row of the 20% test split was scored
    reg = json.loads((tmp_path / "run" / "registration.json").read_text())
    assert reg["created"] and reg["version"] == "1" and reg["gates"]["f1"] >= 0.80

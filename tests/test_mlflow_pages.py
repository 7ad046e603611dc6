"""What MLflow's pages show for this project, read back from a real `mlflow server` as its UI reads them: a training
run with a description naming its data, a meaningful source, dataset inputs with digests, a named model and a duration
that covers the training; a registered model and versions with descriptions linking the model card; drift runs that
write the version's status tags only when asked.

One cheap training (synthetic rows, a few seconds of search) and one registration serve every test here."""
import json
import pytest
from conftest import SYNTHETIC_GATES

NAME, EXPERIMENT = "pages-model", "pages"

@pytest.fixture(scope="module")
def registered(mlflow_server, synthetic_csv, tmp_path_factory):
    "A training run logged to the server by `train_and_log` (as the train job and `loan-default train` do), registered as version 1."
    import mlflow
    from loan_default.validate import validate_file
    from loan_default.tracking import train_and_log
    from loan_default.registry import register
    mlflow.set_tracking_uri(mlflow_server); mlflow.set_registry_uri(mlflow_server)   # conftest restores both after this file
    run_dir = tmp_path_factory.mktemp("pages-run")
    report = validate_file(synthetic_csv, run_dir / "validation").report
    result, logged = train_and_log(run_dir, synthetic_csv, time_budget_s=3, seed=3, experiment=EXPERIMENT)
    reg = register(logged.run_id, NAME, EXPERIMENT, min_f1=float(SYNTHETIC_GATES["LD_MIN_F1"]), min_roc_auc=float(SYNTHETIC_GATES["LD_MIN_ROC_AUC"]))
    return dict(client=mlflow.MlflowClient(), result=result, logged=logged, reg=reg, report=report, run_dir=run_dir)

def test_training_run_has_a_description_naming_its_data(registered):
    client, result, report = registered["client"], registered["result"], registered["report"]
    run = client.get_run(registered["logged"].run_id)
    note = run.data.tags.get("mlflow.note.content", "")
    assert note.strip(), run.data.tags
    for part in ("synth.csv", report["sha256"][:16], f"{report['rows_in']:,} rows read", "ROC AUC 0.", "F1 0.", "Brier 0.", "lightgbm"):
        assert part in note, (part, note)
    assert run.data.tags["mlflow.source.name"] != "ipykernel_launcher.py" and run.data.tags["mlflow.source.type"] == "LOCAL"
    assert (run.info.end_time - run.info.start_time) / 1000 >= result.seconds    # the run covers the training, not only the logging

def test_training_run_has_dataset_inputs_with_digests(registered):
    client, result, report = registered["client"], registered["result"], registered["report"]
    run = client.get_run(registered["logged"].run_id)
    by_context = {{t.key: t.value for t in i.tags}["mlflow.data.context"]: i for i in run.inputs.dataset_inputs}
    assert set(by_context) == {"training", "validation", "testing"}, by_context
    training = by_context["training"]
    assert training.dataset.name == "synth-train" and len(training.dataset.digest) >= 8
    assert json.loads(training.dataset.profile)["num_rows"] == len(result.splits["train"])
    assert json.loads(training.dataset.source)["uri"].endswith("/synth.csv")
    assert {t.key: t.value for t in training.tags}["data.sha256"] == report["sha256"]
    assert by_context["testing"].dataset.digest != training.dataset.digest

def test_logged_model_has_a_meaningful_name(registered):
    client, logged = registered["client"], registered["logged"]
    assert logged.model_uri.startswith("models:/m-")
    assert client.get_logged_model(logged.model_uri.removeprefix("models:/")).name == "loan_default_model"

def test_registered_model_and_every_version_have_descriptions(registered):
    client, reg = registered["client"], registered["reg"]
    assert "no worse than `@production`" in (client.get_registered_model(NAME).description or "")
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert [v.version for v in versions] == [reg.version] == ["1"]
    for v in versions:
        d = v.description or ""
        assert d.startswith("Gates passed: test ROC AUC 0.") and "Brier score 0." in d and "decision threshold 0." in d, d
        card = v.tags["model_card.html"]                                  # the card's own tag, linked on the run's artifact page
        assert card.startswith("runs:/") and f"({card})" not in d and f"`{card}`" in d
        assert f"#/experiments/{client.get_run(v.run_id).info.experiment_id}/runs/{v.run_id}/artifacts/model_card/model_card.html" in d

def test_drift_runs_update_the_version_only_when_asked(registered, tmp_path):
    from loan_default.drift import drift_command
    from loan_default.synth import synthesize
    client = registered["client"]
    synthesize(1_500, seed=21, shift="income", dirty=False).drop(columns="loan_status").to_csv(tmp_path / "current.csv", index=False)
    kw = dict(model=NAME, alias="staging", experiment="pages-drift")
    adhoc = drift_command(tmp_path / "current.csv", out=tmp_path / "adhoc", **kw)
    tags = client.get_model_version(NAME, "1").tags
    assert "drift.last_status" not in tags and "drift.last_run_id" not in tags, tags
    assert client.get_run(adhoc.run_id).data.tags["drift.updates_version"] == "false"
    monitored = drift_command(tmp_path / "current.csv", out=tmp_path / "monitored", update_version=True, **kw)
    tags = client.get_model_version(NAME, "1").tags
    assert tags["drift.last_status"] == monitored.report["status"] and tags["drift.last_run_id"] == monitored.run_id

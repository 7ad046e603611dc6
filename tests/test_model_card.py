"The model card as `register` makes it: a second version's card names the first in its change log, and no card shows a local path."
import hashlib
from pathlib import Path
import pandas as pd
import pytest

@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, synthetic_csv):
    "Two versions of one registered model, trained on two different files, registered as `make run` does (cards attached)."
    import mlflow
    from mlflow import MlflowClient
    from loan_default.train import train_model
    from loan_default.tracking import log_training
    from loan_default.registry import register
    d = tmp_path_factory.mktemp("card-registry")
    uri = f"sqlite:///{d}/mlflow.db"
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    MlflowClient().create_experiment("cards", artifact_location=str(d / "artifacts"))
    first = pd.read_csv(synthetic_csv)
    second_file = d / "second.csv"; first.sample(frac=0.9, random_state=1).to_csv(second_file, index=False)
    versions = []
    for path, seed in ((synthetic_csv, 1), (second_file, 2)):
        digest = dict(sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest())     # as validation reports it
        logged = log_training(train_model(pd.read_csv(path), time_budget_s=1, seed=seed), path, digest, experiment="cards")
        versions.append(register(logged.run_id, name="cards", experiment="cards", min_f1=0.3, min_roc_auc=0.7).version)
    return MlflowClient(), versions, d

def _card(client, name: str, version: str, kind: str, dst: Path) -> str:
    "The card `register` logged for the version (its `model_card.*` tag), as text."
    import mlflow
    from loan_default.model_card import CARD_TAGS
    tags = client.get_model_version(name, version).tags
    assert "model_card.error" not in tags, tags["model_card.error"]
    return Path(mlflow.artifacts.download_artifacts(tags[CARD_TAGS[kind]], dst_path=str(dst / f"{version}-{kind}"))).read_text()

def test_second_version_card_has_a_change_log_naming_the_first(two_versions):
    client, (v1, v2), d = two_versions
    first, second = _card(client, "cards", v1, "markdown", d), _card(client, "cards", v2, "markdown", d)
    assert f"**First version**: version {v1} is the first" in first
    log = second.split("### Changes since the previous version", 1)[1].split("###", 1)[0]
    assert f"Against version {v1} (training run `{client.get_model_version('cards', v1).run_id}`)" in log
    assert f"| data file | `synth.csv` | `second.csv` | **changed** |" in log and "**the data changed**" in log
    assert f"| | version {v1} | version {v2} | change |" in log.replace("|  |", "| |")

def test_cards_show_file_names_never_local_paths(two_versions, synthetic_csv):
    client, versions, d = two_versions
    for v in versions:
        for kind in ("markdown", "html"):
            card = _card(client, "cards", v, kind, d)
            assert str(d) not in card and str(synthetic_csv.parent) not in card, (v, kind)

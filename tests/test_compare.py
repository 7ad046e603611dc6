"""`loan-default compare` end to end, through the console script, against real stores and a real registry.

Two versions are trained on synthetic data and registered (v1 @production, v2 @staging). The same applications are
scored by both, offline, and written into a prediction store as the shadow service writes it (the champion's rows in
`predictions`, the challenger's in `shadow_predictions`, outcomes for some): `compare --from-store` must find exactly
the swap set computed offline, on SQLite and on PostgreSQL; the file mode must find it too; the challenger version must
carry the `shadow_compare.*` tags the promote gate reads; bad input must end in one line and exit code 1."""
import json, os, sqlite3
import numpy as np, pandas as pd
import pytest
from conftest import ROOT, run_cli, one_line_error

NAME = "compare-test"
SINCE, UNTIL = "2026-11-01", "2026-11-03"

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    "An embedded registry with two trained versions of NAME: 1 @production, 2 @staging. Its URI."
    import sys, mlflow
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_bench import train_registered
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri              # conftest puts it back after this file
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)
    assert train_registered(folder, NAME, seeds=(1, 2)) == "1"
    return uri

@pytest.fixture(scope="module")
def scored(registry):
    "2,000 applications scored offline by both versions, their times over two days, and the swap set by hand."
    from loan_default.synth import synthesize
    from loan_default.schema import FEATURES
    from loan_default.inference import model_version, model_columns, model_input_frame
    apps = synthesize(2_000, seed=21, dirty=False).assign(application_id=lambda d: [f"app-{i}" for i in range(len(d))])
    cols = model_columns(model_input_frame(apps[FEATURES]))
    s1, s2 = (model_version(NAME, version=v).score(cols) for v in ("1", "2"))
    offline = dict(approve_to_decline=int(((s1.predicted == 0) & (s2.predicted == 1)).sum()),
                   decline_to_approve=int(((s1.predicted == 1) & (s2.predicted == 0)).sum()))
    assert offline["approve_to_decline"] + offline["decline_to_approve"] > 0          # two different models: some swaps to find
    times = pd.date_range(SINCE, periods=len(apps), freq=pd.Timedelta(days=2) / len(apps), tz="UTC").to_pydatetime()
    return apps, s1, s2, times, offline

def _rows(apps, s, times, version):
    return [dict(application_id=apps.application_id[i], request_id=f"r-{i}", scored_at=times[i], model_name=NAME, model_version=version,
                 probability_of_default=float(s.probability[i]), predicted_default=int(s.predicted[i]),
                 decision="decline" if s.predicted[i] else "approve") for i in range(len(apps))]

def write_store(url: str, scored, shadow: bool = True, outcomes: bool = True) -> None:
    "The store as the service with a shadow writes it: champion rows with their inputs, shadow rows, outcomes for every other application."
    import sqlalchemy as sa
    from loan_default.schema import FEATURES, TARGET
    from loan_default.serve import migrate, PREDICTIONS, SHADOW_PREDICTIONS, OUTCOMES
    apps, s1, s2, times, _ = scored
    inputs = json.loads(apps[FEATURES].to_json(orient="records"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        migrate(conn)
        conn.execute(PREDICTIONS.insert(), [r | dict(inputs=x) for r, x in zip(_rows(apps, s1, times, "1"), inputs)])
        if shadow: conn.execute(SHADOW_PREDICTIONS.insert(), [r | dict(model_alias="staging") for r in _rows(apps, s2, times, "2")])
        if outcomes:
            conn.execute(OUTCOMES.insert(), [dict(application_id=apps.application_id[i], loan_status=int(apps[TARGET][i]), observed_at=None,
                                                  recorded_at=times[-1]) for i in range(0, len(apps), 2)])
    engine.dispose()

def _report(out) -> dict: return json.loads((out / "report.json").read_text())

def test_store_swaps_equal_offline_and_tags_the_challenger(tmp_path, registry, scored):
    from mlflow import MlflowClient
    apps, _, _, _, offline = scored
    url = f"sqlite:///{tmp_path}/store.db"
    write_store(url, scored)
    r = run_cli("compare", "--from-store", url, "--since", SINCE, "--until", UNTIL, "--out", tmp_path / "out", cwd=tmp_path,
                env={"MLFLOW_TRACKING_URI": registry, "LD_MODEL_NAME": NAME})
    assert r.returncode == 0, r.stderr
    rep = _report(tmp_path / "out")
    assert (rep["rows"], rep["champion"], rep["challenger"], rep["source"]) == (len(apps), "1", "2", "store")
    assert {k: rep["swap"][k] for k in offline} == offline
    assert len(rep["swap"]["ids"]["approve_to_decline"]) == offline["approve_to_decline"]
    assert rep["outcomes"]["matured"] == len(apps) // 2 and rep["outcomes"]["groups"]["approve_to_decline"]["pairs"] == offline["approve_to_decline"]
    for k in ("roc_auc", "f1", "default_rate_approved"):
        d = rep["outcomes"]["difference"][k]
        assert d["low"] <= d["value"] <= d["high"]
    assert f"{offline['approve_to_decline']:,} approve->decline" in r.stdout and "report.html" in r.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html
    v2 = MlflowClient().get_model_version(NAME, "2").tags
    assert (v2["shadow_compare.rows"], v2["shadow_compare.champion"], v2["shadow_compare.source"]) == (str(len(apps)), "1", "store")
    assert int(v2["shadow_compare.approve_to_decline"]) == offline["approve_to_decline"]
    assert int(v2["shadow_compare.decline_to_approve"]) == offline["decline_to_approve"]
    assert float(v2["shadow_compare.approval_rate_challenger"]) == pytest.approx(rep["approval_rate"]["challenger"], abs=1e-6)
    assert v2["shadow_compare.window"] == "2026-11-01T00:00:00+00:00 .. 2026-11-03T00:00:00+00:00"
    assert pd.Timestamp(v2["shadow_compare.at"]).tzinfo is not None
    run = MlflowClient().get_run(v2["shadow_compare.run_id"])
    assert {a.path for a in MlflowClient().list_artifacts(run.info.run_id)} == {"report.json", "report.html"}
    assert run.data.metrics["swap.approve_to_decline"] == offline["approve_to_decline"]
    assert not any(k.startswith("shadow_compare.") for k in MlflowClient().get_model_version(NAME, "1").tags)   # the champion untouched

def test_window_without_outcomes_is_a_note(tmp_path, registry, scored):
    url = f"sqlite:///{tmp_path}/store.db"
    write_store(url, scored, outcomes=False)
    r = run_cli("compare", "--from-store", url, "--since", "2026-11-02", "--no-log", "--out", tmp_path / "out", cwd=tmp_path, env={"LD_MODEL_NAME": NAME})
    assert r.returncode == 0, r.stderr
    rep = _report(tmp_path / "out")
    assert rep["rows"] == 1_000 and rep["outcomes"]["matured"] == 0 and rep["outcomes"]["champion"] is None
    assert any(n.startswith("no outcomes yet") for n in rep["notes"])

def test_postgres_store(tmp_path, registry, scored, postgres):
    url = postgres.create_database("compare_test")
    write_store(url, scored)
    r = run_cli("compare", "--from-store", url, "--since", SINCE, "--until", UNTIL, "--no-log", "--out", tmp_path / "out",
                cwd=tmp_path, env={"LD_MODEL_NAME": NAME})
    assert r.returncode == 0, r.stderr
    rep = _report(tmp_path / "out")
    assert rep["rows"] == len(scored[0]) and {k: rep["swap"][k] for k in scored[4]} == scored[4]
    assert rep["window"]["first"] == "2026-11-01T00:00:00+00:00"

def test_file_mode(tmp_path, registry, scored):
    apps, _, _, _, offline = scored
    apps.to_csv(tmp_path / "apps.csv", index=False)
    env = {"MLFLOW_TRACKING_URI": registry, "LD_MODEL_NAME": NAME}
    r = run_cli("compare", tmp_path / "apps.csv", "--no-log", "--out", tmp_path / "out", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    rep = _report(tmp_path / "out")
    assert (rep["source"], rep["champion"], rep["challenger"], rep["rows"]) == ("file", "1", "2", len(apps))
    assert {k: rep["swap"][k] for k in offline} == offline and rep["outcomes"]["matured"] == len(apps)
    r = run_cli("compare", tmp_path / "apps.csv", "--champion", "2", "--challenger", "1", "--no-log", "--out", tmp_path / "swapped", cwd=tmp_path, env=env)
    rev = _report(tmp_path / "swapped")
    assert (rev["swap"]["approve_to_decline"], rev["swap"]["decline_to_approve"]) == (offline["decline_to_approve"], offline["approve_to_decline"])

def test_bad_input_one_line_each(tmp_path, registry, scored):
    env = {"MLFLOW_TRACKING_URI": registry, "LD_MODEL_NAME": NAME}
    apps = scored[0]
    no_shadow = f"sqlite:///{tmp_path}/no_shadow.db"; write_store(no_shadow, scored, shadow=False)
    old = tmp_path / "old.db"; sqlite3.connect(old).execute("create table predictions (id integer)").connection.close()
    apps.drop(columns=["loan_grade"]).to_csv(tmp_path / "no_grade.csv", index=False)
    apps.head(50).assign(loan_status="maybe").to_csv(tmp_path / "bad_status.csv", index=False)
    cases = [
        (["--from-store", no_shadow, "--no-log"], "none of the 2,000 predictions in the window has a shadow row"),
        (["--from-store", no_shadow, "--since", "2027-01-01", "--no-log"], "no predictions in the window"),
        (["--from-store", f"sqlite:///{old}", "--no-log"], "has no shadow_predictions table"),
        (["--from-store", no_shadow, "--since", "2026-11-03", "--until", "2026-11-01", "--no-log"], "is not before --until"),
        ([tmp_path / "no_grade.csv", "--no-log"], "no_grade.csv lacks columns: loan_grade"),
        ([tmp_path / "bad_status.csv", "--no-log"], "bad_status.csv: row 0: loan_status 'maybe' is not 0 or 1"),
        ([tmp_path / "no_grade.csv", "--champion", "staging", "--no-log"], "both compare-test version 2"),
        ([tmp_path / "no_grade.csv", "--challenger", "nosuch", "--no-log"], "has no @nosuch"),
        ([tmp_path / "no_grade.csv", "--from-store", no_shadow, "--no-log"], "give exactly one of"),
        ([tmp_path / "no_grade.csv", "--since", "2026-11-01", "--no-log"], "they go with --from-store"),
    ]
    for args, words in cases:
        r = run_cli("compare", *args, cwd=tmp_path, env=env)
        assert r.returncode == 1, (args, r.stderr)
        one_line_error(r, words)
    r = run_cli("compare", "--from-store", no_shadow, "--bogus", cwd=tmp_path, env=env)
    assert r.returncode == 2 and one_line_error(r, "no such option '--bogus'", "compare --help")

def test_promote_reads_the_shadow_evidence(tmp_path, registry, scored):
    "The gate end to end (last: it moves @production): refused while the evidence is short or from a file, the headline shown, then promoted."
    apps = scored[0]
    url, env = f"sqlite:///{tmp_path}/store.db", {"MLFLOW_TRACKING_URI": registry, "LD_MODEL_NAME": NAME}
    write_store(url, scored)
    apps.to_csv(tmp_path / "apps.csv", index=False)
    assert run_cli("compare", tmp_path / "apps.csv", "--out", tmp_path / "file", cwd=tmp_path, env=env).returncode == 0   # file evidence only
    r = run_cli("promote", cwd=tmp_path, env=env | {"LD_PROMOTE_MIN_SHADOW": "500"})
    one_line_error(r, "refused to promote version 2", "made on a file, not on live applications")
    half = run_cli("compare", "--from-store", url, "--since", "2026-11-02", "--out", tmp_path / "half", cwd=tmp_path, env=env)
    assert half.returncode == 0, half.stderr                                                      # the last day: 1,000 applications
    r = run_cli("promote", cwd=tmp_path, env=env | {"LD_PROMOTE_MIN_SHADOW": "1500"})
    one_line_error(r, "covers 1,000 applications, fewer than LD_PROMOTE_MIN_SHADOW=1500")
    assert "shadow comparison of version 2 against version 1 (store, 2026-11-02" in r.stdout and "1,000 applications" in r.stdout
    from mlflow import MlflowClient
    assert str(MlflowClient().get_model_version_by_alias(NAME, "production").version) == "1"              # refused: nothing moved
    r = run_cli("promote", cwd=tmp_path, env=env | {"LD_PROMOTE_MIN_SHADOW": "1000"})
    assert r.returncode == 0, r.stderr
    headline, moved = r.stdout.strip().splitlines()
    assert headline.startswith("shadow comparison of version 2 against version 1") and moved.startswith(f"{NAME} @production -> version 2 (was 1)")

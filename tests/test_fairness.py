"""Regulation B's age rule and the adverse impact gate, through the installed `loan-default` command.

A training file is made on purpose so that default rises with age past 62 (a fifth of the applicants are 62-95).
`loan-default train` with `LD_TRAIN_CONSTRAINTS=none` learns exactly that, and `loan-default register` must refuse it
in one line naming the age rule, leaving @staging where it was; the same file trained under the credit policy's
constraints (the default) passes the gate, with its figures as version tags. `LD_MIN_AIR` set above the model's
lowest adverse impact ratio refuses a good model, naming the group. Real processes, an embedded MLflow store."""
import json
import numpy as np
import pytest
from conftest import run_cli, one_line_error, SYNTHETIC_GATES

def older_riskier(path, n=3_000, seed=11):
    "Synthetic applicants, a fifth of them aged 62-95, whose chance of default climbs with age past 62."
    from loan_default.synth import synthesize
    df = synthesize(n, seed=seed, dirty=False)
    rng = np.random.default_rng(seed)
    old = rng.random(n) < 0.2
    df.loc[old, "person_age"] = rng.integers(62, 96, old.sum())
    df.loc[old, "loan_status"] = (rng.random(old.sum()) < 0.1 + 0.7 * (df.loc[old, "person_age"] - 62) / 33).astype(int)
    df.to_csv(path, index=False)
    return path

def client(uri):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=uri, registry_uri=uri)

def train(d, data, constraints, env) -> str:
    out = d / f"run-{constraints}"
    r = run_cli("train", "--data", data, "--time-budget", 2, "--seed", 1, "--out", out, cwd=d, env={**env, "LD_TRAIN_CONSTRAINTS": constraints})
    assert r.returncode == 0, r.stderr
    return json.loads((out / "train.json").read_text())["run_id"]

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    "An embedded store with two runs on the same age-skewed file: trained under the policy, and without constraints."
    d = tmp_path_factory.mktemp("fairness")
    uri = f"sqlite:///{d}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "LD_MIN_AIR": None, **SYNTHETIC_GATES}
    data = older_riskier(d / "older_riskier.csv")
    runs = {c: train(d, data, c, env) for c in ("policy", "none")}
    import mlflow
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)          # for the in-process check (reset after this file)
    return uri, env, d, runs

def test_the_age_gate_refuses_a_model_that_scores_older_applicants_worse(store):
    uri, env, d, runs = store
    c, name = client(uri), "aged"
    r = run_cli("register", "--run-id", runs["policy"], "--name", name, env=env, cwd=d)
    assert r.returncode == 0 and r.stdout.startswith(f"registered {name}: version 1 (@staging)"), (r.stdout, r.stderr)
    tags = c.get_model_version(name, "1").tags
    assert (tags["gate.passed"], tags["gate.age_rule_violations"], tags["gate.age_rule_tolerance"]) == ("true", "0", "1e-09")
    split_rows = int(tags["gate.age_rule_split_rows"])
    assert int(tags["gate.age_rule_rows"]) == min(1_000, split_rows) and float(tags["gate.age_rule_worst_gap"]) <= 1e-9

    r = run_cli("register", "--run-id", runs["none"], "--name", name, env=env, cwd=d)
    line = one_line_error(r, "refused, nothing registered", "age rule broken (Regulation B", "worst: row ")
    print(line)
    assert " at age " in line and " of " in line, line
    assert {a: str(v) for a, v in c.get_registered_model(name).aliases.items()} == {"staging": "1"}
    assert [str(v.version) for v in c.search_model_versions(f"name = '{name}'")] == ["1"]

    # the refused model really breaks the rule: check it in this process through its own scorer
    import mlflow
    from loan_default.fairness import age_rule, age_rule_rows, scorer_of
    from loan_default.registry import load_test_split
    model = mlflow.pyfunc.load_model(c.get_run(runs["none"]).data.tags["model_uri"])
    rule = age_rule(scorer_of(model), age_rule_rows(load_test_split(c, runs["none"])))
    assert not rule.passed and rule.example["p_older"] > rule.example["p_younger"] and rule.example["age_older"] >= 62

def test_a_minimum_adverse_impact_ratio_refuses_naming_the_group(store):
    uri, env, d, runs = store
    c, name = client(uri), "air"
    r = run_cli("register", "--run-id", runs["policy"], "--name", name, env={**env, "LD_MIN_AIR": "0.999"}, cwd=d)
    line = one_line_error(r, "refused, nothing registered: lowest adverse impact ratio", "is below the minimum 0.999 (LD_MIN_AIR)")
    print(line)
    assert "(age band " in line or "(home ownership " in line, line
    assert c.search_model_versions(f"name = '{name}'") == []
    one_line_error(run_cli("register", "--run-id", runs["policy"], "--name", name, env={**env, "LD_MIN_AIR": "1.5"}, cwd=d), "LD_MIN_AIR")
    r = run_cli("register", "--run-id", runs["policy"], "--name", name, env={**env, "LD_MIN_AIR": "0.05"}, cwd=d)
    assert r.returncode == 0, r.stderr
    tags = c.get_model_version(name, "1").tags
    assert tags["gate.min_air"] == "0.05" and 0.05 <= float(tags["gate.lowest_air"]) <= 1 and tags["gate.lowest_air_group"]

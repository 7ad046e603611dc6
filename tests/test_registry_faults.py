"""A crash at any step of register / promote / rollback leaves a registry that running the same command again completes.

The crash is real: the console script kills itself with SIGKILL at a named step (the test hook `LD_FAULT_KILL_AT`,
see nbs/07_registry.ipynb). After each kill the test checks what a user running `promote` (or `rollback`) in between
would get, then reruns the killed command and compares the whole registry (aliases, version tags, model tags) with
the same commands run without a crash. Two training runs are made once, against an embedded sqlite store; one case
runs against a real `mlflow server`."""
import json, signal
import pytest
from conftest import run_cli, one_line_error, SYNTHETIC_GATES
from loan_default.registry import STEPS, FINISHED, FAULT_ENV, OPERATION_TAG, PREVIOUS_TAG, REGISTRATION_TAG

GATES = dict(min_f1=float(SYNTHETIC_GATES["LD_MIN_F1"]), min_roc_auc=float(SYNTHETIC_GATES["LD_MIN_ROC_AUC"]), tolerance=1.0)

def client(uri):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=uri, registry_uri=uri)

def train(folder, data, seed, env) -> str:
    r = run_cli("train", "--data", data, "--time-budget", 2, "--seed", seed, "--out", folder / f"run{seed}", cwd=folder, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads((folder / f"run{seed}" / "train.json").read_text())["run_id"]

@pytest.fixture(scope="module")
def store(tmp_path_factory, synthetic_csv):
    "An embedded store with two finished training runs: (uri, env for the CLI, [run1, run2], folder)."
    d = tmp_path_factory.mktemp("faults")
    uri = f"sqlite:///{d}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "LD_GATE_TOLERANCE": "1.0", **SYNTHETIC_GATES}
    runs = [train(d, synthetic_csv, seed, env) for seed in (1, 2)]
    import mlflow
    mlflow.set_tracking_uri(uri); mlflow.set_registry_uri(uri)          # for the in-process set-ups (reset after this file)
    return uri, env, runs, d

def state(c, name) -> dict:
    "Everything the registry holds for `name`: aliases, model tags, and each version's tags."
    m = c.get_registered_model(name)
    return dict(aliases={a: str(v) for a, v in m.aliases.items()}, model_tags=dict(m.tags),
                versions={str(v.version): dict(v.tags) for v in c.search_model_versions(f"name = '{name}'")})

def killed(*args, at, env, cwd):
    "Run the CLI with the fault hook at step `at`, and check it died there."
    r = run_cli(*args, env={**env, FAULT_ENV: at}, cwd=cwd)
    assert r.returncode == -signal.SIGKILL, (at, r.returncode, r.stdout, r.stderr)

def do(name, runs, *steps):
    "In-process, uninterrupted: `r1`/`r2` register run1/run2, `p` promotes, `b` rolls back."
    from loan_default import registry
    act = dict(r1=lambda: registry.register(runs[0], name, **GATES), r2=lambda: registry.register(runs[1], name, **GATES),
               p=lambda: registry.promote(name), b=lambda: registry.rollback(name))
    for s in steps: act[s]()

@pytest.fixture(scope="module")
def expected(store):
    "The registry each sequence of commands leaves when nothing crashes (snapshots of two reference models)."
    uri, env, runs, d = store
    c, out = client(uri), {}
    do("ref-a", runs, "r1"); out["r1"] = state(c, "ref-a")
    do("ref-b", runs, "r1")
    for steps in ("r1 p", "r1 p r2", "r1 p r2 p", "r1 p r2 p b"):
        do("ref-b", runs, steps.split()[-1]); out[steps] = state(c, "ref-b")
    return out

# --- register ------------------------------------------------------------------------------------------------

def test_first_registration_killed_after_creating_the_model(store, expected):
    uri, env, runs, d = store
    c, name = client(uri), "first-version"
    killed("register", "--run-id", runs[0], "--name", name, at="register.model-created", env=env, cwd=d)
    assert state(c, name)["versions"] == {}
    one_line_error(run_cli("promote", "--name", name, env=env, cwd=d), "no @staging version")
    r = run_cli("register", "--run-id", runs[0], "--name", name, env=env, cwd=d)
    assert r.returncode == 0 and r.stdout.startswith(f"registered {name}: version 1 (@staging)"), (r.stdout, r.stderr)
    assert state(c, name) == expected["r1"]

def test_a_model_life_killed_at_every_step(store, expected):
    """The reported case and all its neighbours, on one model: version 1 in production; registering run2 is killed
    at each step in turn (each rerun dies one step further on), then promote, then rollback likewise. Between
    kills, the other commands refuse rather than act on the half-made state; each final rerun leaves exactly the
    registry an uninterrupted command leaves."""
    uri, env, runs, d = store
    c, name = client(uri), "killed-at-every-step"
    from loan_default import registry
    do(name, runs, "r1", "p")
    for step in STEPS["register"][1:]:
        killed("register", "--run-id", runs[1], "--name", name, at=step, env=env, cwd=d)
        with pytest.raises(registry.RegistryError, match=f"version 2 .*has not finished registering: run `(\\S*/)?loan-default register --run-id {runs[1]} --model {name}`"):
            registry.promote(name)
        assert state(c, name)["aliases"]["production"] == "1" and state(c, name)["versions"]["2"][REGISTRATION_TAG] == "pending"
    one_line_error(run_cli("promote", "--name", name, env=env, cwd=d), "version 2", "has not finished registering")
    r = run_cli("register", "--name", name, env=env, cwd=d)  # the latest training run: run2
    assert r.returncode == 0 and "completed the interrupted registration" in r.stdout and "version 2 (@staging)" in r.stdout, r.stderr
    assert state(c, name) == expected["r1 p r2"]

    for step in STEPS["promote"]:
        killed("promote", "--name", name, at=step, env=env, cwd=d)
        s = state(c, name)
        assert s["model_tags"][OPERATION_TAG] == "promote 2 1" and s["aliases"]["production"] in ("1", "2"), (step, s)
        for f in (registry.rollback, lambda n: registry.register(runs[0], n, **GATES)):
            with pytest.raises(registry.RegistryError, match=f"interrupted promote .* run `(\\S*/)?loan-default promote --model {name}` again .*retry-safe: `(\\S*/)?loan-default promote --version 2 --model {name}`"): f(name)
    r = run_cli("promote", "--name", name, env=env, cwd=d)
    assert r.returncode == 0 and "@production -> version 2 (was 1)" in r.stdout, (r.stdout, r.stderr)
    assert state(c, name) == expected["r1 p r2 p"]
    assert state(c, name)["versions"]["2"][PREVIOUS_TAG] == "1"

    for step in STEPS["rollback"]:
        killed("rollback", "--name", name, at=step, env=env, cwd=d)
        assert state(c, name)["model_tags"][OPERATION_TAG] == "rollback 1 2"
        with pytest.raises(registry.RegistryError, match=f"interrupted rollback .* run `(\\S*/)?loan-default rollback --model {name}` again"): registry.promote(name)
    r = run_cli("rollback", "--name", name, env=env, cwd=d)     # finishes this rollback: never a second step back
    assert r.returncode == 0 and "back to version 1 (was 2)" in r.stdout, (r.stdout, r.stderr)
    assert state(c, name) == expected["r1 p r2 p b"]
    with pytest.raises(registry.RegistryError, match="no previous version"): registry.rollback(name)

# --- against a real MLflow server ----------------------------------------------------------------------------

def test_crashes_against_a_tracking_server(mlflow_server, synthetic_csv, tmp_path):
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_REGISTRY_URI": None, **SYNTHETIC_GATES}
    c, name = client(mlflow_server), "faults-on-a-server"
    run = train(tmp_path, synthetic_csv, 3, env)
    killed("register", "--run-id", run, "--name", name, at="register.version-created", env=env, cwd=tmp_path)
    assert state(c, name)["versions"]["1"][REGISTRATION_TAG] == "pending"
    one_line_error(run_cli("promote", "--name", name, env=env, cwd=tmp_path), "version 1 has not finished registering")
    r = run_cli("register", "--run-id", run, "--name", name, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "completed the interrupted registration" in r.stdout, r.stderr
    s = state(c, name)
    assert s["aliases"] == {"staging": "1"} and s["versions"]["1"][REGISTRATION_TAG] == "complete"
    assert s["versions"]["1"]["gate.passed"] == "true" and s["versions"]["1"]["model_card.html"].startswith("runs:/")
    killed("promote", "--name", name, at="promote.production", env=env, cwd=tmp_path)
    one_line_error(run_cli("rollback", "--name", name, env=env, cwd=tmp_path), "interrupted promote")
    r = run_cli("promote", "--name", name, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "@production -> version 1 (was unset)" in r.stdout, r.stderr
    s = state(c, name)
    assert s["aliases"] == {"production": "1"} and OPERATION_TAG not in s["model_tags"] and PREVIOUS_TAG not in s["versions"]["1"]

def test_commands_at_once_do_not_interleave(store):
    "register and promote (and two promotes) started together: the new version is never left without an alias, and one promote wins."
    import subprocess
    from conftest import CLI, BASE_ENV
    uri, env, runs, d = store
    c, name = client(uri), "at-once"
    do(name, runs, "r1", "p")
    full = {k: v for k, v in {**BASE_ENV, **env}.items() if v is not None}
    def start(*args): return subprocess.Popen([str(CLI), *args, "--name", name], cwd=d, env=full, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = [start("register", "--run-id", runs[1]), start("promote"), start("promote")]
    outs = [(p.wait(120), *p.communicate()) for p in procs]
    assert outs[0][0] == 0, outs[0]
    s = state(c, name)
    assert s["versions"]["2"][REGISTRATION_TAG] == "complete" and "2" in s["aliases"].values(), (s, outs)
    assert OPERATION_TAG not in s["model_tags"]
    promoted = [o for o in outs[1:] if o[0] == 0]
    assert len(promoted) <= 1, outs            # a second promote finds no @staging: it refuses with one line
    for o in outs[1:]:
        if o[0]: assert o[2].strip().startswith("error: no @staging version") and len(o[2].strip().splitlines()) == 1, o
    assert s["aliases"].get("production") == ("2" if promoted else "1") and s["aliases"].get("staging") == (None if promoted else "2")

def test_damaged_bookkeeping_gets_one_line(store):
    "Operation, previous-version, gate and registration tags edited by hand, and an operation naming a deleted version."
    uri, env, runs, d = store
    c, name = client(uri), "damaged-tags"
    do(name, runs, "r1", "p", "r2", "p")
    cli = lambda *a: run_cli(*a, "--name", name, env=env, cwd=d)
    c.set_registered_model_tag(name, OPERATION_TAG, "garbage")
    for cmd in ("promote", "rollback"): one_line_error(cli(cmd), f"damaged tag {OPERATION_TAG}", "'garbage'")
    c.set_registered_model_tag(name, OPERATION_TAG, "rollback 9 2")
    one_line_error(cli("rollback"), "version 9 no longer exists", OPERATION_TAG)
    assert state(c, name)["aliases"]["production"] == "2"
    c.delete_registered_model_tag(name, OPERATION_TAG)
    c.set_model_version_tag(name, "2", PREVIOUS_TAG, "one")
    one_line_error(cli("rollback"), "'one'", "is not a version number")
    c.set_model_version_tag(name, "2", PREVIOUS_TAG, "7")
    one_line_error(cli("rollback"), "previous version '7'", "no longer exists")
    assert state(c, name)["aliases"]["production"] == "2"
    c.set_model_version_tag(name, "2", "gate.f1", "high"); c.set_model_version_tag(name, "2", REGISTRATION_TAG, "??")
    r = cli("register", "--run-id", runs[1])        # an unknown registration value counts as unfinished: register completes it
    assert r.returncode == 0 and "completed the interrupted registration" in r.stdout, (r.stdout, r.stderr)
    assert state(c, name)["versions"]["2"][REGISTRATION_TAG] == "complete" and state(c, name)["aliases"]["production"] == "2"

def test_model_names_mlflow_cannot_hold_are_refused(store):
    uri, env, runs, d = store
    for name, why in (("it's", "contains \"'\""), ("a/b", "'/'"), (" ", "is empty")):
        one_line_error(run_cli("register", "--run-id", runs[0], "--name", name, env=env, cwd=d), "model name", why)
    one_line_error(run_cli("promote", "--name", "x%41", env=env, cwd=d), "model name", "'%'")

# --- retry-safe reruns: a command that finished but was killed before it exited -------------------------------

def test_finished_rollback_rerun_with_from_changes_nothing(store):
    """The reported case: `rollback` 2 -> 1 finished (operation tag removed) and was killed before exiting. Rerun
    with `--from 2` it says it is done and exits 0; the registry is exactly as the finished rollback left it."""
    uri, env, runs, d = store
    c, name = client(uri), "retry-safe-rollback"
    do(name, runs, "r1", "p", "r2", "p")
    cli = lambda *a: run_cli(*a, "--name", name, env=env, cwd=d)
    killed("rollback", "--from", "2", "--name", name, at=FINISHED["rollback"], env=env, cwd=d)
    done = state(c, name)
    assert done["aliases"] == {"production": "1"} and OPERATION_TAG not in done["model_tags"], done
    for _ in range(2):
        r = cli("rollback", "--from", "2")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.strip() == f"{name} @production already back at version 1 (rolled back from 2): nothing to do", r.stdout
        assert state(c, name) == done
    one_line_error(cli("rollback", "--from", "1"), "no previous version", "version 1 was the first in production")
    one_line_error(cli("rollback", "--from", "7"), "no version 7")
    for bad in ("two", "0", "-1"): one_line_error(cli("rollback", "--from", bad), "--from must be a version number")
    assert state(c, name) == done

def test_plain_commands_name_their_retry_safe_rerun(store):
    uri, env, runs, d = store
    c, name = client(uri), "retry-safe-lines"
    do(name, runs, "r1", "p", "r2")
    r = run_cli("promote", "--name", name, env=env, cwd=d)
    assert r.returncode == 0 and "@production -> version 2 (was 1) (rerun safely with --version 2)" in r.stdout, (r.stdout, r.stderr)
    r = run_cli("rollback", "--name", name, env=env, cwd=d)
    assert r.returncode == 0 and "@production back to version 1 (was 2) (rerun safely with --from 2)" in r.stdout, (r.stdout, r.stderr)
    r = run_cli("rollback", "--from", "2", "--name", name, env=env, cwd=d)
    assert r.returncode == 0 and "nothing to do" in r.stdout and state(c, name)["aliases"] == {"production": "1"}, r.stdout

def test_finished_promote_rerun_with_version_changes_nothing(store, expected):
    uri, env, runs, d = store
    c, name = client(uri), "retry-safe-promote"
    do(name, runs, "r1", "p", "r2")
    cli = lambda *a: run_cli(*a, "--name", name, env=env, cwd=d)
    r = cli("promote", "--version", "1")            # version 1 is in production already: @staging 2 is left alone
    assert r.returncode == 0 and r.stdout.strip() == f"{name} @production already at version 1: nothing to do", (r.stdout, r.stderr)
    one_line_error(cli("promote", "--version", "3"), "has no version 3")
    assert state(c, name) == expected["r1 p r2"]
    killed("promote", "--version", "2", "--name", name, at=FINISHED["promote"], env=env, cwd=d)
    assert state(c, name) == expected["r1 p r2 p"]
    for _ in range(2):
        r = cli("promote", "--version", "2")
        assert r.returncode == 0 and r.stdout.strip() == f"{name} @production already at version 2: nothing to do", (r.stdout, r.stderr)
        assert state(c, name) == expected["r1 p r2 p"]
    one_line_error(cli("promote", "--version", "1"), "refused to promote version 1", "@staging is unset and @production is version 2")
    one_line_error(cli("promote", "--version", "x"), "--version must be a version number")

def test_interrupted_operations_finished_by_the_same_explicit_move_only(store, expected):
    "Killed mid-way (operation tag still there): the explicit form of that move finishes it; a different move is refused."
    uri, env, runs, d = store
    c, name = client(uri), "retry-safe-interrupted"
    do(name, runs, "r1", "p", "r2")
    cli = lambda *a: run_cli(*a, "--name", name, env=env, cwd=d)
    killed("promote", "--version", "2", "--name", name, at="promote.production", env=env, cwd=d)
    one_line_error(cli("promote", "--version", "1"), "interrupted promote", f"loan-default promote --version 2 --model {name}`")
    one_line_error(cli("rollback", "--from", "2"), "interrupted promote")
    r = cli("promote", "--version", "2")
    assert r.returncode == 0 and "@production -> version 2 (was 1)" in r.stdout, (r.stdout, r.stderr)
    assert state(c, name) == expected["r1 p r2 p"]
    killed("rollback", "--from", "2", "--name", name, at="rollback.production", env=env, cwd=d)
    one_line_error(cli("rollback", "--from", "1"), "interrupted rollback", f"loan-default rollback --from 2 --model {name}`")
    r = cli("rollback", "--from", "2")
    assert r.returncode == 0 and "back to version 1 (was 2)" in r.stdout, (r.stdout, r.stderr)
    assert state(c, name) == expected["r1 p r2 p b"]
    r = cli("rollback", "--from", "2")
    assert r.returncode == 0 and "nothing to do" in r.stdout and state(c, name) == expected["r1 p r2 p b"], r.stdout

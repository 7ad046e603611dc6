"""Bad input to every command of the real console script: one line `error: ...` naming the problem, never "unexpected".
Usage mistakes too: one line naming the command and its help, exit 2. And the surface a user meets first: `--version`,
help on every option with the values settings resolve to, `--model` (with `--name` hidden), output suffixes checked.

"unexpected X" was what `main` printed for any exception nobody had turned into a message. Each failure a user can
cause now gets a message where it happens; the last-resort line left in `main` says "internal error ... please
report it". These cases run in a small thread pool (each is its own process) to keep the file quick."""
import json, shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse
import pytest
from conftest import run_cli, one_line_error, SYNTHETIC_GATES

def run_all(cases, **kw):
    with ThreadPoolExecutor(4) as pool: return list(pool.map(lambda c: run_cli(*c[0], **{**kw, **c[1]}), cases))

def usage_error(r, command: str) -> str:
    "Assert `r` is a usage mistake of `loan-default COMMAND`: exit 2 and one line naming the command and its help."
    assert r.returncode == 2, (r.returncode, r.stderr)
    line = one_line_error(r, f"error: loan-default{' ' + command if command else ''}: ", " --help)")
    assert "Usage:" not in r.stderr and "Try '" not in r.stderr and "Error:" not in r.stderr, r.stderr
    return line

def check(r, words, args=()):
    assert "unexpected" not in (r.stdout + r.stderr).lower(), r.stderr
    assert "internal error" not in r.stderr, r.stderr
    if words is None:                                           # a usage mistake: one line too, exit 2
        from loan_default.cli import cli
        usage_error(r, str(args[0]) if args and str(args[0]) in cli.commands else "")
    else: one_line_error(r, *words)

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-input")
    from loan_default.synth import write_synthetic
    write_synthetic(d / "good.csv", n_rows=300, seed=1)
    (d / "empty.csv").write_text("")
    (d / "header.csv").write_text("person_age,person_income\n")
    (d / "binary.csv").write_bytes(b"\x00\xff\xfe\x00garbage")
    (d / "folder.csv").mkdir()
    (d / "a-file").write_text("x")
    (d / "profile.json").write_text("{not json")
    (d / "notdb.db").write_bytes(b"this is not a database" * 20)
    from loan_default.registry import init_store
    init_store(f"sqlite:///{d}/mlflow.db")     # the cases below run in parallel: score and drift open the store unlocked
    return d

def test_bad_files_options_and_stores(files):
    d = files
    db = {"MLFLOW_TRACKING_URI": f"sqlite:///{d}/mlflow.db"}
    down = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    cases = [  # (args, extra run_cli kwargs, words the one line must hold; None: a usage error)
        (["validate", "--data", d / "missing.csv", "--out", d / "v"], {}, ["missing.csv"]),
        (["validate", "--data", d / "empty.csv", "--out", d / "v"], {}, ["empty"]),
        (["validate", "--data", d / "header.csv", "--out", d / "v"], {}, ["header"]),
        (["validate", "--data", d / "binary.csv", "--out", d / "v"], {}, ["binary"]),
        (["validate", "--data", d / "folder.csv", "--out", d / "v"], {}, ["folder.csv"]),
        (["validate", "--data", d / "good.csv", "--max-reject-share", "2"], {}, None),
        (["stats", "--data", d / "missing.csv", "--out", d / "s.json"], {}, ["missing.csv"]),
        (["stats", "--data", d / "good.csv", "--out", d / "folder.csv"], {}, ["folder.csv"]),
        (["synth", "--rows", "0", "--out", d / "x.csv"], {}, None),
        (["synth", "--rows", "10", "--out", d / "folder.csv"], {}, ["folder.csv"]),
        (["synth", "--rows", "10", "--out", d / "x.txt"], {}, None),
        (["stats", "--data", d / "good.csv", "--out", d / "stats.csv"], {}, None),
        (["score", "--data", d / "good.csv", "--out", d / "o.csv"], {"env": db}, None),
        (["train", "--data", d / "empty.csv", "--out", d / "t"], {"env": db}, ["empty"]),
        (["train", "--data", d / "good.csv", "--time-budget", "-1"], {}, None),
        (["register", "--run-id", "zzz"], {"env": db}, ["no run with id 'zzz'"]),
        (["register", "--name", "bad/name"], {"env": db}, ["model name", "contains '/'"]),
        (["promote", "--name", "no-such-model"], {"env": db}, ["no registered model named 'no-such-model'"]),
        (["promote", "--model", "no-such-model"], {"env": db}, ["no registered model named 'no-such-model'"]),
        (["register", "--model", "bad/name"], {"env": db}, ["model name", "contains '/'"]),
        (["rollback", "--name", "no-such-model"], {"env": db}, ["no registered model named 'no-such-model'"]),
        (["promote"], {"env": down}, ["does not answer"]),
        (["score", "--data", d / "good.csv", "--out", d / "o.parquet"], {"env": down}, ["does not answer"]),
        (["promote"], {"env": {"MLFLOW_TRACKING_URI": "sqlite:////no/such/folder/mlflow.db"}}, ["/no/such/folder does not exist"]),
        (["register"], {"env": {"MLFLOW_TRACKING_URI": f"sqlite:///{d}/notdb.db"}}, ["not a readable database"]),
        (["run", "nope"], {}, ["no job named 'nope'"]),
        (["run", "validate", "-p", "data_pth", "x.csv", "--out", d / "j"], {}, ["no parameter 'data_pth'"]),
        (["run", "validate", "-p", "data_path"], {}, None),
        (["run", "validate", "-p", "data_path", d / "good.csv", "--out", d / "a-file"], {}, ["a-file"]),
        (["pipeline", "--data", d / "missing.csv", "--out", d / "p"], {"env": db}, ["job validate failed", "missing.csv"]),
        (["score", "--data", d / "missing.csv", "--out", d / "o.parquet"], {"env": db}, ["missing.csv"]),
        (["score", "--data", d / "good.csv", "--out", d / "o.parquet", "--model", "nope"], {"env": db}, ["nope"]),
        (["drift", "--current", d / "good.csv", "--profile", d / "profile.json", "--no-log", "--out", d / "dr"], {}, ["profile.json"]),
        (["drift", "--current", d / "good.csv", "--model", "nope", "--no-log", "--out", d / "dr2"], {"env": db}, ["nope"]),
        (["serve", "--port", "0"], {}, None),
        (["no-such-command"], {}, None),
        (["drift", "--no-such-option"], {}, None),
        (["--no-such-option"], {}, None),
    ]
    results = run_all([(c[0], {"cwd": d, **c[1]}) for c in cases])
    for (args, _, words), r in zip(cases, results): check(r, words, args)
    assert not (d / "x.txt").exists() and not (d / "stats.csv").exists() and not (d / "o.csv").exists()

def test_version():
    "`loan-default --version`: the installed package's version, which is settings.ini's."
    import configparser
    from importlib.metadata import version
    from conftest import ROOT
    r = run_cli("--version")
    ini = configparser.ConfigParser(); ini.read(ROOT / "settings.ini")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"loan-default {version('loan_default')}\n", "")
    assert version("loan_default") == ini["DEFAULT"]["version"]

def _visible_options(command):
    import click
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]

def test_every_option_of_every_command_has_help():
    "Walks the commands' parameters: an option without help text (or with its variable in place of a default) fails."
    from loan_default.cli import cli
    missing = [f"{n} {o.opts[0]}" for n, c in cli.commands.items() for o in _visible_options(c) if not (o.help or "").strip()]
    missing += [f"loan-default {o.opts[0]}" for o in _visible_options(cli) if not (o.help or "").strip()]
    assert len(cli.commands) >= 12 and missing == []
    assert [f"{n} {o.opts[0]}" for n, c in cli.commands.items() for o in _visible_options(c) if "[default: LD_" in (o.help or "")] == []

def test_help_shows_the_values_settings_resolve_to(tmp_path):
    "An option standing for a setting shows its value now (from the environment too) and its variable, never the variable alone."
    r = run_cli("train", "--help", env={"LD_TIME_BUDGET_S": "600"}, cwd=tmp_path)
    text = " ".join(r.stdout.split())
    assert r.returncode == 0 and "[default: 600 (LD_TIME_BUDGET_S); x>0]" in text and "[default: 42 (LD_SEED)]" in text, r.stdout
    r = run_cli("serve", "--help", cwd=tmp_path)
    text = " ".join(r.stdout.split())
    assert "[default: 8000 (LD_SERVE_PORT); 1<=x<=65535]" in text and "(LD_MODEL_NAME)]" in text, r.stdout

def test_model_option_is_model_everywhere_and_name_still_works(tmp_path):
    "`--model` in the help of every command that takes a registered model; `--name` is hidden but still accepted."
    from loan_default.cli import cli
    takes_model = sorted(n for n, c in cli.commands.items() if any(p.name == "model_name" for p in c.params))
    assert takes_model == ["compare", "drift", "promote", "register", "rollback", "score", "serve"]
    for n in takes_model:
        text = run_cli(n, "--help", cwd=tmp_path).stdout
        assert "--model TEXT" in text and "--name" not in text, (n, text)
    db = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    for flag in ("--model", "--name"):
        one_line_error(run_cli("rollback", flag, "no-such-model", cwd=tmp_path, env=db), "no registered model named 'no-such-model'")

def test_usage_errors_are_one_line_through_the_console_script(tmp_path):
    "The README's promise: one line `error: ...`, naming the command, exit 2; never click's Usage/Try/Error block."
    cases = [(["synth", "--rows", "0", "--out", tmp_path / "x.csv"], "synth", "invalid value for '--rows'"),
             (["validate", "--out", tmp_path], "validate", "missing option '--data'"),
             (["run"], "run", "missing argument 'JOB'"),
             (["run", "validate", "-p", "data_path"], "run", "option '-p' requires 2 arguments"),
             (["promote", "--version"], "promote", "option '--version' requires an argument"),
             (["frobnicate"], "", "no such command 'frobnicate'")]
    for (args, command, words), r in zip(cases, run_all([(c[0], {"cwd": tmp_path}) for c in cases])):
        assert words in usage_error(r, command), r.stderr

def test_output_suffixes_are_checked(tmp_path):
    "`synth --out x.txt` writes nothing (it used to write CSV to .txt); .csv and .parquet are written in their format."
    import pandas as pd
    r = run_cli("synth", "--rows", 20, "--out", tmp_path / "x.txt", cwd=tmp_path)
    assert "must end in .csv or .parquet" in usage_error(r, "synth") and not (tmp_path / "x.txt").exists()
    for name, read in (("x.csv", pd.read_csv), ("x.parquet", pd.read_parquet)):
        assert run_cli("synth", "--rows", 20, "--out", tmp_path / name, cwd=tmp_path).returncode == 0
        assert len(read(tmp_path / name)) >= 20
    r = run_cli("stats", "--data", tmp_path / "x.csv", "--out", tmp_path / "stats.txt", cwd=tmp_path)
    assert "must end in .json" in usage_error(r, "stats") and not (tmp_path / "stats.txt").exists()

@pytest.fixture(scope="module")
def broken_model(files, synthetic_csv):
    "A trained, registered, promoted model in an embedded store, and the folder of its logged model's files."
    d = files / "store"; d.mkdir()
    uri = f"sqlite:///{d}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "LD_MODEL_NAME": "fragile", **SYNTHETIC_GATES}
    r = run_cli("train", "--data", synthetic_csv, "--time-budget", 2, "--out", d / "run", cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    for cmd in ("register", "promote"): assert run_cli(cmd, cwd=d, env=env).returncode == 0
    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model_id = json.loads((d / "run" / "train.json").read_text())["model_uri"].removeprefix("models:/")
    return d, env, Path(urlparse(c.get_logged_model(model_id).artifact_location).path)

DAMAGE = ("model files", "everything")

def damaged(d, where, damage):
    "Restore the logged model's files, then damage them one way."
    saved = d / "saved-model"
    if not saved.exists(): shutil.copytree(where, saved)
    shutil.rmtree(where, ignore_errors=True); shutil.copytree(saved, where)
    if damage == "MLmodel": (where / "MLmodel").write_text("{ not: [yaml")
    elif damage == "model files":
        for f in where.rglob("*.skops"): f.write_bytes(b"junk")
    elif damage == "everything": shutil.rmtree(where)

def commands(files, d):
    return [["score", "--data", files / "good.csv", "--out", d / "o.parquet"],
            ["drift", "--current", files / "good.csv", "--no-log", "--out", d / "drift", "--version", "1"]]

def test_a_registered_model_whose_files_are_damaged_or_gone(broken_model, files):
    "Never 'unexpected', never 'no version 1' or 'not found': the version exists."
    d, env, where = broken_model
    for damage in DAMAGE:
        damaged(d, where, damage)
        for r in run_all([(c, {"cwd": d, "env": env}) for c in commands(files, d)]):
            line = one_line_error(r)
            assert "unexpected" not in line and "no version" not in line and "not found" not in line, (damage, line)
    damaged(d, where, "MLmodel")
    from loan_default import registry
    import mlflow
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"]); mlflow.set_registry_uri(env["MLFLOW_TRACKING_URI"])
    with pytest.raises(registry.RegistryError, match="version 1 of 'fragile' is registered but its model cannot be loaded"):
        registry.load_version("fragile")
    damaged(d, where, None)

def test_damaged_model_is_named_as_unloadable_by_score_and_drift(broken_model, files):
    d, env, where = broken_model
    damaged(d, where, "model files")
    try:
        for r in run_all([(c, {"cwd": d, "env": env}) for c in commands(files, d)]):
            line = one_line_error(r)
            assert "internal error" not in line and "cannot be loaded" in line, line
    finally: damaged(d, where, None)

def test_drift_tags_the_model_version_only_with_update_version(broken_model, files):
    "An ad-hoc drift run leaves the version's status tags alone; `--update-version` (monitoring of production) writes them."
    d, env, where = broken_model
    damaged(d, where, None)
    from mlflow import MlflowClient
    c = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    r = run_cli("drift", "--current", files / "good.csv", "--out", d / "adhoc", "--model", "fragile", cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    assert "drift.last_status" not in c.get_model_version("fragile", "1").tags
    r = run_cli("drift", "--current", files / "good.csv", "--out", d / "monitored", "--update-version", cwd=d, env=env)
    assert r.returncode == 0, r.stderr
    assert "drift.last_status" in c.get_model_version("fragile", "1").tags

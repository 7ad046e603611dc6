"""The model users get, for benchmarks: `loan-default` @production as `loan-default pipeline` trains it on the real file.

A benchmark takes a registry by --tracking-uri; without one it calls `pipeline_model`, which trains that model once into
a cache folder (~/.cache/loan-default/bench) with the console script, promotes it, and reuses it on later runs.
`describe_version` is the line a benchmark prints so its figures say which model they were measured on."""
import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL_DATA = ROOT.parent / "shared" / "data" / "credit_risk_dataset.csv"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loan-default" / "bench"

def add_arguments(ap) -> None:
    "The options every benchmark takes to find its model."
    ap.add_argument("--tracking-uri", help="registry holding the model (default: the pipeline's model on the real file, trained once into --cache)")
    ap.add_argument("--cache", type=Path, default=CACHE, help="where the default model is trained and kept")
    ap.add_argument("--data", type=Path, default=REAL_DATA, help="the file the default model is trained on")
    ap.add_argument("--name", default="loan-default")
    ap.add_argument("--alias", default="production")

def production_version(uri: str, name: str, alias: str = "production"):
    "The version `alias` of `name` points to in the registry at `uri`, or None when there is none."
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    try: return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(name, alias)
    except MlflowException: return None

def pipeline_model(cache: Path = CACHE, data: Path = REAL_DATA, name: str = "loan-default") -> str:
    "The URI of an embedded registry in `cache` where `name`@production is what `loan-default pipeline` trains on `data`; trained and promoted on first use."
    cache.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{cache.resolve()}/mlflow.db"
    if production_version(uri, name) is not None: return uri
    if not data.exists(): sys.exit(f"error: {data} not found: give --tracking-uri of a registry holding the model, or put the shared data beside the project")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LD_MODEL_NAME": name}
    print(f"training the model users get: loan-default pipeline --data {data} (in {cache}, a few minutes) ...", flush=True)
    for cmd in (["pipeline", "--data", str(data)], ["promote", "--name", name]):
        subprocess.run([str(BIN / "loan-default"), *cmd], cwd=cache, env=env, check=True)
    return uri

def model_registry(a) -> str:
    "The registry URI a benchmark measures, from its parsed options: --tracking-uri, else the cached pipeline model."
    return a.tracking_uri or pipeline_model(a.cache, a.data, a.name)

def describe_version(uri: str, name: str, alias: str = "production") -> str:
    "One line naming the version measured: number, alias, registry, training run, its data file and hash."
    from mlflow import MlflowClient
    mv = production_version(uri, name, alias)
    if mv is None: sys.exit(f"error: registered model '{name}' has no @{alias} in {uri}")
    tags = MlflowClient(tracking_uri=uri, registry_uri=uri).get_run(mv.run_id).data.tags
    return (f"model {name} version {mv.version} (@{alias}) in {uri}: run {mv.run_id}, trained on {tags.get('data.path', '?')} "
            f"(sha256 {tags.get('data.sha256', '?')[:12]})")

"""The team's two MLflow users, created (or their passwords reset) by the admin: run once the server is up.

- the pipeline's user (PIPELINE_MLFLOW_USERNAME / PIPELINE_MLFLOW_PASSWORD) may write: EDIT on every experiment and
  every registered model (log runs and models, register versions, move aliases; deleting what others made stays
  the admin's);
- the prediction service's user (API_MLFLOW_USERNAME / API_MLFLOW_PASSWORD) gets no grant: the server's default
  permission, READ (docker/mlflow_entrypoint.py), lets it resolve an alias and load a version, nothing more.

It signs in as the admin through MLflow's own variables: MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD. Safe to rerun: an existing user keeps its name and gets the password given now.
docker-compose.yaml runs it as the one-shot service `mlflow-users`; tests/test_auth.py runs it against a real server."""
import os, sys

USERS = {"pipeline": ("PIPELINE_MLFLOW_USERNAME", "PIPELINE_MLFLOW_PASSWORD"),
         "api": ("API_MLFLOW_USERNAME", "API_MLFLOW_PASSWORD")}
ADMIN = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
WRITER_GRANTS = [("experiment", "*", "EDIT"), ("registered_model", "*", "EDIT")]

def ensure_user(auth, username: str, password: str) -> str:
    "Create `username` with `password`, or set that password when the user exists. Returns 'created' or 'updated'."
    from mlflow.exceptions import MlflowException
    try:
        auth.create_user(username, password); return "created"
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS": raise
    auth.update_user_password(username, password); return "updated"

def grant_writer(auth, username: str) -> None:
    "EDIT on every experiment and registered model (a grant already there is kept)."
    from mlflow.exceptions import MlflowException
    for resource_type, pattern, permission in WRITER_GRANTS:
        try: auth.grant_user_permission(username, resource_type, pattern, permission)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS": raise

def main(env=os.environ) -> None:
    lacking = [k for k in (*ADMIN, *(v for pair in USERS.values() for v in pair)) if not env.get(k)]
    if lacking: sys.exit(f"error: set {', '.join(lacking)} (docs/team.md)")
    from mlflow.server import get_app_client
    auth = get_app_client("basic-auth", tracking_uri=env["MLFLOW_TRACKING_URI"])
    (writer, writer_pw), (reader, reader_pw) = ((env[u], env[p]) for u, p in USERS.values())
    if writer == reader: sys.exit("error: the pipeline's and the service's MLflow users must differ")
    print(f"{writer}: {ensure_user(auth, writer, writer_pw)}, may write"); grant_writer(auth, writer)
    print(f"{reader}: {ensure_user(auth, reader, reader_pw)}, may read")

if __name__ == "__main__": main()

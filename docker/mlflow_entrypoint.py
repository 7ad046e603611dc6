"""Entrypoint of the team's MLflow server (docker/mlflow.Dockerfile): refuse to start without the secrets, write the
basic-auth app's configuration, then run the command given (`mlflow server --app-name basic-auth ...`).

The secrets come from the environment only (docker-compose.yaml takes them from the host's environment or .env):
- MLFLOW_AUTH_ADMIN_PASSWORD: the admin user's password. MLflow creates the admin with it the first time it starts
  on an empty user store and ignores it afterwards; it is required at every start so a missing secret shows at once.
- MLFLOW_FLASK_SERVER_SECRET_KEY: the key MLflow's auth app signs its forms with (CSRF protection).
- AUTH_DATABASE_URI: where the users and their permissions live (a SQLAlchemy URL; compose: PostgreSQL).
The configuration written to MLFLOW_AUTH_CONFIG_PATH holds no password of MLflow's: MLflow reads the admin's from
MLFLOW_AUTH_ADMIN_PASSWORD itself (its AuthConfig gives that variable precedence over the file)."""
import configparser, os, sys

REQUIRED = {"MLFLOW_AUTH_ADMIN_PASSWORD": "the MLflow admin user's password (12 characters or more)",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "a random key for the auth app's forms, e.g. `openssl rand -hex 32`",
            "AUTH_DATABASE_URI": "the SQLAlchemy URL of the user store",
            "MLFLOW_AUTH_CONFIG_PATH": "where to write the auth configuration"}
# Every authenticated user may read; the pipeline's user gets EDIT on top (docker/mlflow_users.py)
DEFAULT_PERMISSION = "READ"

def missing(env) -> list[str]:
    "The required variables that are unset or empty in `env`."
    return [k for k in REQUIRED if not env.get(k)]

def auth_config(env) -> str:
    "The basic-auth app's ini: default permission, user store, admin name (its password stays in the environment)."
    cfg = configparser.ConfigParser(interpolation=None)
    cfg["mlflow"] = {"default_permission": DEFAULT_PERMISSION,
                     # MLflow reads this file with interpolation on: a literal % must be doubled
                     "database_uri": env["AUTH_DATABASE_URI"].replace("%", "%%"),
                     "admin_username": env.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin",
                     "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
                     # a password is checked (PBKDF2) once per 5 minutes, not on every request: a training run makes
                     # hundreds. Safe with the compose file's one worker: a password changed through the API takes
                     # effect at once on the worker that handled the change
                     "auth_cache_ttl_seconds": "300"}
    from io import StringIO
    out = StringIO(); cfg.write(out); return out.getvalue()

def main(argv: list[str], env=os.environ) -> None:
    if lacking := missing(env):
        sys.exit("error: refusing to start the MLflow server: set " + ", ".join(f"{k} ({REQUIRED[k]})" for k in lacking)
                 + " (docs/team.md)")
    if not argv: sys.exit("error: no command given (e.g. mlflow server --app-name basic-auth ...)")
    path = env["MLFLOW_AUTH_CONFIG_PATH"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # the user store's URL may hold a password
    with os.fdopen(fd, "w") as f: f.write(auth_config(env))
    os.execvp(argv[0], argv)

if __name__ == "__main__": main(sys.argv[1:])

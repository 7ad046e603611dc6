#!/bin/sh
# Run once by the postgres image, on its first start (an empty data volume), as POSTGRES_USER: the databases beside
# MLflow's own (POSTGRES_DB, `mlflow`):
#   mlflow_auth  MLflow's users and permissions (the basic-auth app's user store), owned by POSTGRES_USER
#   predictions  the API's prediction log (LD_PREDICTION_STORE), owned by its own login `predictions`, which can reach
#                nothing else: the API never holds the credentials of MLflow's databases.
# On a volume created before this script existed, run it by hand (docs/team.md).
set -eu
: "${PREDICTIONS_DB_PASSWORD:?set PREDICTIONS_DB_PASSWORD: the password of the prediction log's database login}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner="$POSTGRES_USER" -v mlflow_db="$POSTGRES_DB" -v predictions_password="$PREDICTIONS_DB_PASSWORD" <<'SQL'
CREATE DATABASE mlflow_auth OWNER :"owner";
CREATE ROLE predictions LOGIN PASSWORD :'predictions_password';
CREATE DATABASE predictions OWNER predictions;
REVOKE CONNECT ON DATABASE :"mlflow_db" FROM PUBLIC;
REVOKE CONNECT ON DATABASE mlflow_auth FROM PUBLIC;
REVOKE CONNECT ON DATABASE predictions FROM PUBLIC;
SQL

# The team's MLflow tracking server (docker-compose.yaml, service `mlflow`): the MLflow requirements.lock pins
# (tests/test_compose.py checks they agree), its basic-auth app's one extra dependency (Flask-WTF, MLflow's `auth`
# extra) and the PostgreSQL driver the project locks (psycopg 3), plus the entrypoint that checks the secrets.
FROM python:3.11-slim
RUN pip install --no-cache-dir mlflow==3.17.2 Flask-WTF==1.3.0 "psycopg[binary]==3.3.9" \
 && mkdir -p /mlflow/artifacts
COPY docker/mlflow_entrypoint.py docker/mlflow_users.py /opt/mlflow/
ENTRYPOINT ["python", "/opt/mlflow/mlflow_entrypoint.py"]

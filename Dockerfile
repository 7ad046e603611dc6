# The prediction service (nbs/09_serve.ipynb): `loan_default.serve.serve` under one uvicorn worker.
#   docker build -t loan-default-serve .
#   docker run -p 8000:8000 -e MLFLOW_TRACKING_URI=http://mlflow:5000 -e LD_API_KEYS=... -e LD_ADMIN_KEY=... \
#              -v loan-default-data:/data loan-default-serve
# Settings are the LD_* environment variables of config.Settings, in the README's one table (LD_MODEL_NAME, LD_SERVE_ALIAS,
# LD_SERVE_POLL_S, LD_PREDICTION_STORE, ...). The tests start the same command directly (tests/test_serve.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# the exact dependency set the project is tested with
WORKDIR /opt/loan_default
COPY requirements.lock ./
RUN python -m pip install -r requirements.lock

COPY settings.ini setup.py README.md ./
COPY loan_default ./loan_default
RUN python -m pip install --no-deps --no-build-isolation . \
 && useradd --system --uid 10001 --home-dir /home/app --create-home app \
 && mkdir -p /data && chown app /data

USER app
WORKDIR /home/app
# the prediction log: SQLite in WAL mode on a volume (any SQLAlchemy URL works, e.g. postgresql+psycopg://...)
ENV LD_PREDICTION_STORE=sqlite:////data/predictions.db
VOLUME ["/data"]
EXPOSE 8000

# healthy = a model is loaded (GET /ready answers 200; it answers 503 with the reason while none is)
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status == 200 else 1)"]

# the same command tests/test_serve.py starts directly (no Docker engine there)
CMD ["loan-default", "serve", "--host", "0.0.0.0", "--port", "8000"]

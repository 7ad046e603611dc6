#!/usr/bin/env bash
# How long `loan-default pipeline` takes on the real file, from nothing to @staging (embedded MLflow in a temp folder).
# Run on demand: bash benchmarks/pipeline_real.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/../shared/data/credit_risk_dataset.csv"
work="$(mktemp -d)"
cd "$work"
start=$(date +%s.%N)
env -u MLFLOW_TRACKING_URI "$root/.venv/bin/loan-default" pipeline --data "$data" --out "$work/run" --time-budget "${1:-120}"
end=$(date +%s.%N)
python3 -c "print(f'pipeline, nothing to @staging: {$end - $start:.1f} s (search budget ${1:-120} s)')"
cat "$work/run/train.json"
echo "registry left in sqlite:///$work/mlflow.db (loan-default @staging): 'MLFLOW_TRACKING_URI=sqlite:///$work/mlflow.db .venv/bin/loan-default promote' there, then pass it to the benchmarks as --tracking-uri"

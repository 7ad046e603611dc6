# The README's commands. Each creates .venv and installs the pinned set on first use (idempotent:
# reinstalls only when requirements.lock, settings.ini or setup.py change).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install install-spark export check-sync docs lab lock

$(STAMP): requirements.lock settings.ini setup.py
	@$(PYTHON) -c 'import sys; sys.exit("loan_default needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (loan_default)" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

## make install-spark: the optional Spark engine (pyspark, pinned in requirements-spark.lock; CI installs it)
install-spark: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-spark.lock

## make run: the main job on data/credit_risk_dataset.csv if present, else on synthetic data
run: $(STAMP)
	$(BIN)/loan-default pipeline

## make test: every test, the notebooks' own (nbdev_test) and tests/ (pytest)
test: $(STAMP)
	$(BIN)/nbdev_test --n_workers 2
	$(BIN)/python -m pytest -q --durations=15 tests

## make export: notebooks -> package, README from nbs/index.ipynb, cleaned notebooks
export: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/python tools/readme.py
	$(BIN)/nbdev_clean

## make check-sync: fail when nbdev_export, nbdev_clean or the README would change a tracked file, or a build's copy
## of the job notebooks (loan_default/jobs, made by setup.py from nbs/jobs) is tracked
check-sync: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/readme.py
	@git diff --exit-code --stat -- . || (echo "generated files are out of date: run 'make export' and commit" >&2; exit 1)
	@test -z "$$(git ls-files loan_default/jobs)" || (echo "loan_default/jobs is a build's copy of nbs/jobs: git rm --cached it" >&2; exit 1)

## make docs: the docs site from the notebooks into _site/, offline (tools/docs.py: nbdev's processing + MkDocs)
docs: $(STAMP)
	$(BIN)/python tools/docs.py

## make lab: JupyterLab on the notebooks (http://localhost:8888/lab); Jupyter's own options in LAB_ARGS, e.g. in a container
##   make lab LAB_ARGS="--ip 0.0.0.0 --port 8888 --no-browser"
## As root (a container), Jupyter refuses to start without --allow-root: it is added when `id -u` is 0.
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

## make lock: re-pin the whole resolved set after changing requirements in settings.ini
lock:
	$(BIN)/python -m pip install -q -e '.[dev]'
	(echo "# The whole resolved dependency set, pinned: 'make' installs exactly this (pip install -r requirements.lock)."; \
	 echo "# Regenerate after changing settings.ini's requirements: make lock"; \
	 $(BIN)/pip freeze --all --exclude-editable | grep -v -E '^(pip|loan[_-]default|pyspark|py4j)==') > requirements.lock

"The prediction log's export and purge through the installed console script, on a SQLite store and on a real PostgreSQL store."
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
import pytest
import sqlalchemy as sa
from conftest import run_cli, one_line_error

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DAY = timedelta(days=1)
# scored_at of each prediction: two older than the six-month retention, two inside it
AGES = {"old-1": 400 * DAY, "old-2": 200 * DAY, "kept-1": 100 * DAY, "kept-2": DAY}
INPUTS = dict(person_age=41, person_income=61000, person_home_ownership="MORTGAGE", person_emp_length=7.0, loan_intent="MEDICAL",
              loan_grade="A", loan_amnt=8000, loan_int_rate=7.9, loan_percent_income=0.13, cb_person_default_on_file="N",
              cb_person_cred_hist_length=12)

def fill_store(url: str) -> None:
    "The service's own tables (its schema, `loan_default.serve`), four predictions and outcomes for one old and one kept."
    from loan_default.serve import METADATA, PREDICTIONS, OUTCOMES
    engine = sa.create_engine(url)
    METADATA.create_all(engine)
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [dict(application_id=a, request_id=f"r-{a}", scored_at=NOW - age, model_name="loan-default",
                                                 model_version="3", probability_of_default=0.3, predicted_default=0, decision="approve",
                                                 inputs=INPUTS, reasons=None) for a, age in AGES.items()])
        conn.execute(OUTCOMES.insert(), [dict(application_id=a, loan_status=y, observed_at=None, recorded_at=NOW)
                                         for a, y in (("old-1", 1), ("kept-1", 0))])
    engine.dispose()

def counts(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = tuple(conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in ("predictions", "outcomes"))
    engine.dispose()
    return n

@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> str:
    "A filled prediction store: a SQLite file, or a database of its own on the tests' PostgreSQL server."
    url = f"sqlite:///{tmp_path / 'predictions.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres").create_database("prediction_log")
    fill_store(url)
    return url

def test_export_by_day(store, tmp_path):
    import pyarrow.dataset as ds
    since, until = (NOW - 500 * DAY).date(), (NOW + DAY).date()
    r = run_cli("export-predictions", "--from-store", store, "--since", since, "--until", until, "--out", tmp_path / "log")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("4 predictions (2 with an outcome) in 4 day file(s)"), r.stdout
    days = sorted(p.name for p in (tmp_path / "log").iterdir())
    assert days == sorted(f"day={(NOW - age).date()}" for age in AGES.values())
    data = ds.dataset(tmp_path / "log", format="parquet", partitioning="hive").to_table().to_pandas().set_index("application_id")
    assert sorted(data.index) == sorted(AGES)
    assert data.loan_status.to_dict() == pytest.approx({"old-1": 1, "kept-1": 0, "old-2": float("nan"), "kept-2": float("nan")}, nan_ok=True)
    assert data.loc["kept-2", "scored_at"] == NOW - DAY and str(data.scored_at.dt.tz) == "UTC"
    assert data.loc["old-1", "day"] == str((NOW - 400 * DAY).date())
    assert data.loc["old-1", "person_income"] == 61000.0 and data.loc["old-1", "loan_grade"] == "A"
    assert json.loads(data.loc["old-1", "inputs"]) == INPUTS
    # the same window again replaces its files; a window holding nothing writes nothing
    again = run_cli("export-predictions", "--from-store", store, "--since", since, "--until", until, "--out", tmp_path / "log")
    assert again.returncode == 0 and len(list((tmp_path / "log").rglob("*.parquet"))) == 4
    empty = run_cli("export-predictions", "--from-store", store, "--since", "2001-01-01", "--until", "2001-01-02", "--out", tmp_path / "none")
    assert empty.returncode == 0 and "no predictions in the window" in empty.stdout and not (tmp_path / "none").exists()

def test_purge_keeps_the_retention(store):
    refused = run_cli("purge-predictions", "--from-store", store, "--before", (NOW - 150 * DAY).date())
    one_line_error(refused, "younger than the retention of 183 days (LD_PREDICTION_RETENTION_DAYS)")
    assert counts(store) == (4, 2)
    dry = run_cli("purge-predictions", "--from-store", store, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("would delete 2 predictions and 1 outcomes"), dry.stdout + dry.stderr
    assert counts(store) == (4, 2)
    shorter = run_cli("purge-predictions", "--from-store", store, env={"LD_PREDICTION_RETENTION_DAYS": "300"})
    assert shorter.returncode == 0 and shorter.stdout.startswith("deleted 1 predictions and 1 outcomes"), shorter.stdout + shorter.stderr
    assert counts(store) == (3, 1)
    done = run_cli("purge-predictions", "--from-store", store)
    assert done.returncode == 0 and done.stdout.startswith("deleted 1 predictions and 0 outcomes"), done.stdout + done.stderr
    assert counts(store) == (2, 1)
    assert run_cli("purge-predictions", "--from-store", store).stdout.startswith("deleted 0 predictions")

def test_store_from_the_setting_and_one_line_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    fill_store(url)
    r = run_cli("purge-predictions", "--dry-run", env={"LD_PREDICTION_STORE": url})
    assert r.returncode == 0 and "would delete 2 predictions" in r.stdout, r.stdout + r.stderr
    one_line_error(run_cli("purge-predictions", "--from-store", f"sqlite:///{tmp_path / 'nope.db'}"), "does not exist")
    assert not (tmp_path / "nope.db").exists()
    one_line_error(run_cli("purge-predictions", "--from-store", url, "--before", "soon"), "--before 'soon' is not a date")
    one_line_error(run_cli("export-predictions", "--from-store", url, "--since", "2026-11-02", "--until", "2026-11-01", "--out", tmp_path / "o"),
                   "is not before --until")
    (tmp_path / "file").write_text("")
    one_line_error(run_cli("export-predictions", "--from-store", url, "--since", "2026-11-01", "--until", "2026-11-02", "--out", tmp_path / "file"),
                   "is a file")
    one_line_error(run_cli("purge-predictions", "--from-store", url, env={"LD_PREDICTION_RETENTION_DAYS": "0"}), "LD_PREDICTION_RETENTION_DAYS")
    helps = [run_cli(c, "--help").stdout for c in ("export-predictions", "purge-predictions")]
    assert all("(LD_PREDICTION_STORE)" in " ".join(h.split()) for h in helps)
    assert "[default: now minus 183 days (LD_PREDICTION_RETENTION_DAYS)]" in " ".join(helps[1].split())

def test_spark_reads_the_export(tmp_path):
    from loan_default import scale
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    fill_store(url)
    r = run_cli("export-predictions", "--from-store", url, "--since", (NOW - 500 * DAY).date(), "--until", (NOW + DAY).date(), "--out", tmp_path / "log")
    assert r.returncode == 0, r.stderr
    spark = scale.spark_session("local[1]")
    try:
        df = spark.read.parquet(str(tmp_path / "log"))
        rows = {x.application_id: x for x in df.select("application_id", "day", "loan_status", "probability_of_default").collect()}
        assert sorted(rows) == sorted(AGES) and str(rows["kept-2"].day) == str((NOW - DAY).date())
        assert rows["old-1"].loan_status == 1 and rows["old-2"].loan_status is None
    finally: spark.stop()

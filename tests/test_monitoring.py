"""Monitoring over time on synthetic streams with known answers (issue 13): a shift that starts at chunk k is flagged
from chunk k and no earlier chunk raises a finding; a relationship-only change is caught by the multivariate figure
and by no feature's PSI; a shift inside one grade is flagged on that segment; realised figures wait for the outcome
window; the summary names the feature with the largest PSI; the overlap warning counts exactly; report.json keeps it all.

The reference is built without the registry: rows of one population (the synthetic generator, or the real file split
at random) give the profile and the `timeline.Baseline`; the current rows are drawn from a held-out part of the same
population, so an unshifted stream is truly stable, then shifted from a known chunk on."""
import json
import numpy as np, pandas as pd
import pytest
from loan_default.drift import Thresholds, drift_command, drift_report, write_report, SCORE, TARGET
from loan_default.profile import reference_profile, save_profile
from loan_default.schema import FEATURES, NUMERIC_FEATURES, CATEGORICAL_FEATURES
from loan_default.synth import synthesize
from loan_default.timeline import baseline
from loan_default.fairness import AGE_BANDS

THRESHOLD = 0.4
TH = Thresholds(min_f1=0.0)          # a quick stand-in model: the registration gate is not what these tests judge
START = pd.Timestamp("2026-01-01", tz="UTC")
FLAGGED = ("warn", "alert")

# ---------------------------------------------------------------- the worlds: reference and held-out rows of one population

def _scorer(df: pd.DataFrame):
    "A logistic regression on all applicant columns, fitted once per world: a deterministic stand-in for the model."
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    pre = make_column_transformer((num, NUMERIC_FEATURES), (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES))
    return make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(df[FEATURES], df[TARGET])

def _world(ref: pd.DataFrame, pool: pd.DataFrame, name: str) -> dict:
    model = _scorer(ref)
    score = lambda df: model.predict_proba(df[FEATURES])[:, 1]
    p_ref = score(ref)
    profile = reference_profile(ref, p_ref)
    b = baseline(profile, ref, p_ref, THRESHOLD, ref[TARGET], source=f"{name} reference rows", seen=ref[FEATURES],
                 seen_what=f"the {name} reference rows")
    return dict(name=name, ref=ref, pool=pool, score=score, profile=profile, baseline=b)

@pytest.fixture(scope="module")
def synth_world():
    return _world(synthesize(25_000, seed=1, dirty=False), synthesize(60_000, seed=2, dirty=False), "synthetic")

@pytest.fixture(scope="module")
def real_world(real_data):
    df = pd.read_csv(real_data)
    df = df[(df.person_age <= 100) & ~(df.person_emp_length > 60)]            # what validation rejects
    df = df.sample(frac=1, random_state=0).reset_index(drop=True)             # the file is sorted by credit history
    return _world(df.iloc[:17_000].reset_index(drop=True), df.iloc[17_000:].reset_index(drop=True), "real")

@pytest.fixture(params=["synth", "real"])
def world(request):
    return request.getfixturevalue(f"{request.param}_world")

# ---------------------------------------------------------------- streams

def _sizes(chunking: str, n_chunks: int, rng) -> np.ndarray:
    "Rows per chunk: equal for chunks by size, varying from day to day for chunks by day."
    return np.full(n_chunks, 1_000) if chunking == "size" else rng.integers(700, 1_300, n_chunks)

def stream(w: dict, sizes, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    "Rows drawn with replacement from the world's held-out rows, `sizes[j]` of them scored on day j (in time order), and each row's chunk."
    rng = np.random.default_rng(seed)
    sizes = np.asarray(sizes)
    cur = w["pool"].iloc[rng.integers(0, len(w["pool"]), int(sizes.sum()))].reset_index(drop=True)
    chunk = np.repeat(np.arange(len(sizes)), sizes)
    within = np.concatenate([np.sort(rng.uniform(0, 86_000, n)) for n in sizes])
    cur["scored_at"] = START + pd.to_timedelta(chunk * 86_400 + within, unit="s")
    return cur, chunk

def scored(w: dict, cur: pd.DataFrame, labels: bool = False) -> pd.DataFrame:
    "`cur` with the stand-in model's probabilities (of the rows as they are now: after any shift), outcomes dropped unless `labels`."
    out = cur.assign(**{SCORE: w["score"](cur)})
    return out if labels else out.drop(columns=TARGET)

def report(w: dict, cur: pd.DataFrame, chunking: str, **kw) -> dict:
    by = dict(chunk_size=1_000) if chunking == "size" else dict(period="day")
    return drift_report(cur, w["profile"], THRESHOLD, th=TH, reference=w["baseline"], **by, **kw)

def _income(cur, rows, rng): cur.loc[rows, "person_income"] = np.round(cur.loc[rows, "person_income"] * 0.6)

def _intent(cur, rows, rng):
    "30% of the rows become VENTURE loans (about 17% in the reference)."
    moved = rows & (rng.random(len(cur)) < 0.3)
    cur.loc[moved, "loan_intent"] = "VENTURE"

def _missing(cur, rows, rng):
    "The interest rate missing in 30% more of the rows (about 10% in the reference)."
    cur.loc[rows & (rng.random(len(cur)) < 0.3), "loan_int_rate"] = np.nan

SHIFTS = {"income": (_income, "person_income"), "intent": (_intent, "loan_intent"), "missing": (_missing, "loan_int_rate")}

def _calm_before(tl: list, k: int):
    for r in tl[:k]:
        assert (r["status"], r["drifted"], r["findings"]) == ("ok", [], []), f"chunk {r['chunk']} before the shift at {k}: {r['findings']}"

# ---------------------------------------------------------------- 1. a shift from chunk k: flagged from k, nothing before

@pytest.mark.parametrize("chunking", ["size", "day"])
@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("kind", list(SHIFTS))
def test_a_shift_from_chunk_k_is_flagged_from_k_and_not_before(world, kind, k, chunking):
    seed = 100 * k + list(SHIFTS).index(kind) + (50 if chunking == "day" else 0)
    rng = np.random.default_rng(seed)
    cur, chunk = stream(world, _sizes(chunking, 8, rng), seed)
    shift, feature = SHIFTS[kind]
    shift(cur, chunk >= k, rng)
    rep = report(world, scored(world, cur), chunking)
    tl = rep["timeline"]
    assert [r["rows"] for r in tl] == np.bincount(chunk).tolist()
    if chunking == "day": assert [pd.Timestamp(r["start"]) for r in tl] == [START + pd.Timedelta(days=j) for j in range(len(tl))]
    _calm_before(tl, k)
    flagged = [r["chunk"] for r in tl if r["status"] in FLAGGED]
    assert flagged and flagged[0] in (k, k + 1), (flagged, [(r["chunk"], r["psi"][feature], r["psi_threshold"][feature]) for r in tl])
    assert flagged == list(range(flagged[0], len(tl))), f"a lasting shift is flagged in every chunk from its first: {flagged}"
    for r in tl[flagged[0]:]:
        assert feature in r["drifted"], (r["chunk"], r["psi"][feature], r["psi_threshold"][feature], r["findings"])
        assert any(f"PSI of {feature}" in f for f in r["findings"]), r["findings"]
    assert rep["summary"]["worst_feature"] == feature and feature in rep["summary"]["drifted_features"]

@pytest.mark.parametrize("chunking", ["size", "day"])
@pytest.mark.parametrize("seed", [7, 8])
def test_an_unshifted_stream_raises_no_finding_in_any_chunk(world, seed, chunking):
    rng = np.random.default_rng(seed)
    cur, chunk = stream(world, _sizes(chunking, 10, rng), seed)
    rep = report(world, scored(world, cur), chunking)
    assert len(rep["timeline"]) == 10
    _calm_before(rep["timeline"], 10)
    assert (rep["summary"]["drifted"], rep["summary"]["drifted_features"]) == (0, []), rep["summary"]["lines"]
    for values in rep["segments"].values():
        for v, r in values.items(): assert r["status"] not in FLAGGED, (v, r)

# ---------------------------------------------------------------- 2. a relationship-only change: multivariate, no PSI

def _permute_within_chunks(cur, chunk, k, column, rng):
    "From chunk k on, `column` shuffled among the rows of each chunk: every chunk keeps exactly its values, rows lose their link."
    for j in range(k, int(chunk.max()) + 1):
        at = np.flatnonzero(chunk == j)
        cur.loc[at, column] = cur.loc[at, column].to_numpy()[rng.permutation(len(at))]

@pytest.mark.parametrize("chunking", ["size", "day"])
@pytest.mark.parametrize("k,column", [(3, "loan_int_rate"), (5, "loan_grade"), (4, "loan_percent_income")])
def test_a_relationship_only_change_is_caught_by_the_multivariate_figure_alone(world, k, column, chunking):
    seed = 300 + k + (50 if chunking == "day" else 0)
    rng = np.random.default_rng(seed)
    cur, chunk = stream(world, _sizes(chunking, 8, rng), seed)
    _permute_within_chunks(cur, chunk, k, column, rng)
    tl = report(world, scored(world, cur), chunking)["timeline"]
    _calm_before(tl, k)
    mv = [(r["chunk"], round(r["multivariate"]["value"], 3), round(r["multivariate"]["threshold"], 3)) for r in tl]
    assert [r["multivariate"]["alert"] for r in tl] == [j >= k for j in range(len(tl))], mv
    for r in tl:
        assert r["drifted"] == [], (r["chunk"], r["drifted"])
        for f in FEATURES: assert r["psi"][f] < r["psi_threshold"][f] and r["psi_threshold"][f] >= TH.psi_warn, (r["chunk"], f, r["psi"][f], r["psi_threshold"][f])
        assert not any(f.startswith(("warn: PSI of", "alert: PSI of")) and "score" not in f for f in r["findings"]), r["findings"]

# ---------------------------------------------------------------- 3. a shift inside one grade: flagged on that segment

@pytest.mark.parametrize("grade,factor,seed", [("C", 1.8, 11), ("D", 1.8, 12), ("B", 1.5, 13)])
def test_a_shift_inside_one_grade_is_flagged_on_that_segment(world, grade, factor, seed):
    rng = np.random.default_rng(seed)
    cur, chunk = stream(world, _sizes("size", 8, rng), seed)
    inside = (cur.loan_grade == grade).to_numpy()
    cur.loc[inside, "loan_amnt"] = np.round(cur.loc[inside, "loan_amnt"] * factor)
    rep = report(world, scored(world, cur), "size")
    grades = rep["segments"]["loan_grade"]
    seg = grades[grade]
    assert seg["rows"] == int(inside.sum()) and seg["reference_rows"] == int((world["ref"].loan_grade == grade).sum())
    assert seg["status"] in FLAGGED and "loan_amnt" in seg["drifted"] and seg["worst_feature"] == "loan_amnt", seg
    for g, r in grades.items():
        if g != grade: assert r["status"] not in FLAGGED and r["drifted"] == [], (g, r)
    named = [l for l in rep["summary"]["lines"] if l.startswith(("warn: loan_amnt drifted inside", "alert: loan_amnt drifted inside"))]   # one line per feature, naming its segments
    assert len(named) == 1 and f"(loan_grade {grade}" in named[0] and f"most in loan_grade {grade}" in named[0], rep["summary"]["lines"]
    print(f"{world['name']} grade {grade} x{factor}: segment PSI {seg['psi']['loan_amnt']:.3f}, whole window {rep['psi']['loan_amnt']:.3f} "
          f"({rep['psi_table']['loan_amnt']['verdict']})")

def test_a_segment_is_flagged_when_the_whole_window_is_not(synth_world):
    "Grade D (about 11% of the rows): amounts x1.8 there leave the whole window's PSI of loan_amnt under 0.1."
    w, rng = synth_world, np.random.default_rng(21)
    cur, chunk = stream(w, _sizes("size", 8, rng), 21)
    inside = (cur.loan_grade == "D").to_numpy()
    cur.loc[inside, "loan_amnt"] = np.round(cur.loc[inside, "loan_amnt"] * 1.8)
    rep = report(w, scored(w, cur), "size")
    assert rep["psi_table"]["loan_amnt"]["verdict"] == "ok", rep["psi"]["loan_amnt"]
    assert rep["segments"]["loan_grade"]["D"]["status"] in FLAGGED and "loan_amnt" in rep["segments"]["loan_grade"]["D"]["drifted"]
    assert rep["status"] in FLAGGED

# ---------------------------------------------------------------- 4. outcomes: judged once the window has passed

def _monthly(w: dict, seed: int, months: int = 6, per_month: int = 1_000) -> pd.DataFrame:
    "Rows with outcomes scored over `months` months (by month chunks), some outcomes not known, more of them in the later months."
    rng = np.random.default_rng(seed)
    cur = w["pool"].iloc[rng.integers(0, len(w["pool"]), months * per_month)].reset_index(drop=True)
    days = (START + pd.DateOffset(months=months) - START).days
    cur["scored_at"] = START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86_400, len(cur))), unit="s")
    age = (cur["scored_at"] - START).dt.days.to_numpy() / days                 # 0 for the oldest loans, 1 for the newest
    unknown = rng.random(len(cur)) < 0.05 + 0.5 * age
    cur[TARGET] = cur[TARGET].astype("float64").mask(unknown)
    return scored(w, cur, labels=True)

@pytest.mark.parametrize("window,as_of,seed", [("90d", "2026-07-15", 41), ("60d", "2026-07-10", 42), ("12w", "2026-08-20", 43)])
def test_realised_figures_wait_for_the_outcome_window(world, window, as_of, seed):
    from sklearn.metrics import f1_score, roc_auc_score
    cur = _monthly(world, seed)
    rep = drift_report(cur, world["profile"], THRESHOLD, th=TH, reference=world["baseline"], period="month", outcome_window=window, as_of=as_of)
    tl = rep["timeline"]
    month = cur["scored_at"].dt.month.to_numpy() - 1
    assert len(tl) == 6 and [r["rows"] for r in tl] == np.bincount(month).tolist()
    ripe_at = pd.Timestamp(as_of, tz="UTC") - pd.Timedelta(window.replace("w", "W").replace("d", "D"))
    ends = cur.groupby(month)["scored_at"].max()
    expect = [bool(ends[j] <= ripe_at) for j in range(6)]
    assert 0 < sum(expect) < 6, "the case must have matured and young chunks"
    assert [r["outcomes"]["matured"] for r in tl] == expect
    for j, r in enumerate(tl):
        here = cur[month == j]
        known = here[TARGET].notna().to_numpy()
        assert r["outcomes"]["known"] == int(known.sum()) and r["outcomes"]["missing"] == int((~known).sum()), (j, r["outcomes"])
        if not expect[j]:
            assert r["realised"] == dict(roc_auc=None, f1=None, default_rate=None), (j, r["realised"])
            continue
        y, p = here[TARGET].to_numpy()[known], here[SCORE].to_numpy()[known]
        assert r["realised"]["default_rate"] == pytest.approx(y.mean())
        assert r["realised"]["f1"] == pytest.approx(f1_score(y, p >= THRESHOLD))
        assert r["realised"]["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.01)   # binned in 1,000 reference score bins
    missing = sum(r["outcomes"]["missing"] for r in tl if r["outcomes"]["matured"])
    line = next(l for l in rep["summary"]["lines"] if l.startswith("outcomes:"))
    assert f"{sum(expect)} of 6 chunks" in line and f"{missing:,} of their outcomes are still missing" in line, line
    assert rep["monitoring"]["outcome_window"] == window

def test_without_a_window_every_labelled_chunk_is_judged(synth_world):
    cur = _monthly(synth_world, 44)
    tl = drift_report(cur, synth_world["profile"], THRESHOLD, th=TH, reference=synth_world["baseline"], period="month")["timeline"]
    assert all(r["outcomes"]["matured"] is None and r["realised"]["roc_auc"] is not None for r in tl)

# ---------------------------------------------------------------- 5. the summary, and the overlap warning

_RANK = {"warning": 3, "alert": 2, "warn": 1}

def _rank(line: str) -> int: return _RANK.get(line.split(":", 1)[0], 0)

@pytest.mark.parametrize("big,small,seed", [("person_home_ownership", "person_age", 51), ("person_age", "person_home_ownership", 52),
                                            ("loan_amnt", "person_income", 53)])
def test_the_summary_names_the_feature_with_the_largest_psi(world, big, small, seed):
    "Two features shifted from chunk 3 on, one much more than the other: the summary's worst feature is the one whose PSI is largest."
    rng = np.random.default_rng(seed)
    cur, chunk = stream(world, _sizes("size", 8, rng), seed)
    later = chunk >= 3
    for name, strength in ((big, 0.9), (small, 0.3)):
        if name == "person_home_ownership":
            cur.loc[later & (rng.random(len(cur)) < strength), name] = "OWN"
        else:
            cur.loc[later, name] = np.round(cur.loc[later, name] * (1 + 1.5 * strength)).clip(upper=100 if name == "person_age" else None)
    rep = report(world, scored(world, cur), "size")
    s, psi = rep["summary"], {f: rep["psi"][f] for f in FEATURES}
    assert s["worst_feature"] == max(psi, key=psi.get) == big, psi
    assert s["worst_psi"] == pytest.approx(psi[big])
    drifted = {f for f in FEATURES if rep["psi_table"][f]["verdict"] in FLAGGED} | {f for r in rep["timeline"] for f in r["drifted"]}
    assert {big, small} <= drifted
    assert (s["drifted"], s["of"], s["drifted_features"]) == (len(drifted), len(FEATURES), sorted(drifted))
    assert s["lines"] and all(isinstance(l, str) and l for l in s["lines"])
    ranks = [_rank(l) for l in s["lines"]]
    assert ranks == sorted(ranks, reverse=True), s["lines"]
    assert next(l for l in s["lines"] if not l.startswith("warning: ")).startswith("alert: ") and s["status"] == rep["status"] == "alert"
    assert s["reference"]["rows"] == world["baseline"].rows and s["reference"]["source"] == world["baseline"].source

def _seen_count(cur: pd.DataFrame, seen: pd.DataFrame) -> int:
    "How many rows of `cur` equal some row of `seen` in every applicant column (missing equal to missing)."
    text = lambda df, c: df[c].astype("float64").map(repr) if c in NUMERIC_FEATURES else df[c].astype(str)
    key = lambda df: pd.concat([text(df, c) for c in FEATURES], axis=1).agg("|".join, axis=1)
    return int(key(cur).isin(set(key(seen))).sum())

@pytest.mark.parametrize("copied,seed", [(0, 61), (37, 62), (1_500, 63)])
def test_the_overlap_warning_counts_the_reference_rows_exactly(world, copied, seed):
    rng = np.random.default_rng(seed)
    cur, chunk = stream(world, _sizes("size", 6, rng), seed)
    at = rng.choice(len(cur), copied, replace=False)
    ref = world["ref"]
    rows = rng.choice(len(ref), copied, replace=False)
    for c in [*FEATURES, TARGET]: cur.loc[at, c] = ref[c].to_numpy()[rows]
    expected = _seen_count(cur, ref)
    assert expected >= copied
    rep = report(world, scored(world, cur), "size")
    ov = rep["summary"]["overlap"]
    assert ov["rows"] == expected and ov["share"] == pytest.approx(expected / len(cur)), (ov, expected)
    if expected:
        assert ov["warning"].startswith(f"{expected:,} of {len(cur):,} current rows") and world["name"] in ov["warning"], ov["warning"]
        assert rep["summary"]["lines"][0] == f"warning: {ov['warning']}"
    else:
        assert ov["warning"] is None and not any(l.startswith("warning:") for l in rep["summary"]["lines"])

# ---------------------------------------------------------------- 6. report.json

def test_report_json_keeps_the_timeline_segments_and_summary(synth_world, tmp_path):
    w, rng = synth_world, np.random.default_rng(71)
    cur, chunk = stream(w, _sizes("day", 6, rng), 71)
    _income(cur, chunk >= 4, rng)
    rep = report(w, scored(w, cur), "day")
    js, _ = write_report(rep, tmp_path / "out")
    back = json.loads(js.read_text())
    for k in ("timeline", "segments", "summary", "monitoring", "overlap"): assert k in back, k
    assert [r["status"] for r in back["timeline"]] == [r["status"] for r in rep["timeline"]] == ["ok"] * 4 + ["alert"] * 2
    assert [r["drifted"] for r in back["timeline"]] == [r["drifted"] for r in rep["timeline"]]
    assert all(isinstance(r["multivariate"], dict) and set(r["multivariate"]) == {"value", "threshold", "alert"} for r in back["timeline"])
    assert set(back["segments"]) == {"loan_grade", "loan_intent", "age_band"} and list(back["segments"]["age_band"]) == list(AGE_BANDS)
    assert back["summary"]["worst_feature"] == "person_income" and back["summary"]["drifted"] == rep["summary"]["drifted"]

@pytest.mark.parametrize("chunking", ["size", "day"])
def test_drift_command_with_a_profile_file_writes_the_timeline_without_reference_rows(synth_world, tmp_path, chunking):
    "A profile without rows: the timeline is judged against chunks drawn from the profile's shares; no segments, no multivariate figure."
    w, rng = synth_world, np.random.default_rng(81)
    save_profile(w["profile"], tmp_path / "profile.json")
    cur, chunk = stream(w, _sizes(chunking, 8, rng), 81)
    _intent(cur, chunk >= 5, rng)
    cur = scored(w, cur)
    cur.assign(scored_at=cur.scored_at.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(tmp_path / "cur.csv", index=False)
    by = dict(chunk_size=1_000) if chunking == "size" else dict(period="day")
    res = drift_command(tmp_path / "cur.csv", profile=tmp_path / "profile.json", threshold=THRESHOLD, log=False, out=tmp_path / "out", th=TH, **by)
    back = json.loads((tmp_path / "out" / "report.json").read_text())
    for k in ("timeline", "segments", "summary", "monitoring", "overlap"): assert k in back, k
    tl = back["timeline"]
    assert [r["rows"] for r in tl] == np.bincount(chunk).tolist()
    assert back["segments"] is None and all(r["multivariate"] is None for r in tl)
    _calm_before(tl, 5)
    assert all(r["status"] in FLAGGED and "loan_intent" in r["drifted"] for r in tl[5:]), [(r["chunk"], r["status"], r["drifted"]) for r in tl]
    s = back["summary"]
    assert s["worst_feature"] == "loan_intent" and s["of"] == len(FEATURES) and "loan_intent" in s["drifted_features"]
    assert f"max PSI {s['worst_psi']:.3f} (loan_intent)" in res.message, res.message

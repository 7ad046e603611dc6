"""What each way of keeping credit policy in the trees costs, on the real file: ROC AUC and the age rule.

    .venv/bin/python benchmarks/policy_options.py [--data ../shared/data/credit_risk_dataset.csv] [--trees 710 --learning-rate 0.05]

Every option is the same LightGBM configuration (the shipped defaults, at the given trees and learning rate) fitted on
the pipeline's train split and judged on its validation and test splits. The age column counts, of the first 500 test
applicants, those who get a higher probability of default at some age of 62 or more than at their most favourable age
below 62, with everything else held fixed (Regulation B), and the largest such gap. The figures feed the table in
nbs/06_train.ipynb.
"""
import argparse, warnings
from pathlib import Path
import numpy as np, pandas as pd
from sklearn.metrics import roc_auc_score
from loan_default.features import ApplicantFeatures, MODEL_FEATURES, derived_features, raw_features
from loan_default.schema import CATEGORICAL_FEATURES, FEATURES, TARGET
from loan_default.train import DEFAULT_PARAMS, MONOTONE, MONOTONE_METHOD, ORDERED_CATEGORIES, UNUSED, split_data, training_frame
from lightgbm import LGBMClassifier

ROOT = Path(__file__).resolve().parents[1]
AGE_ONLY = {"person_age": -1}
OPTIONS = {   # name: (monotone constraints, features the trees may not use, categories split as ordered codes)
    "no constraints": ({}, (), ()),
    "age left out (age and both ratios unused)": ({}, ("person_age",) + UNUSED, ()),
    "age monotone, ratios constrained +1": (AGE_ONLY | {f: 1 for f in UNUSED}, (), ()),
    "age monotone, ratios unused": (AGE_ONLY, UNUSED, ()),
    "+ credit-policy constraints (shipped)": (MONOTONE, UNUSED, ORDERED_CATEGORIES),
    "+ income forced too": (MONOTONE | {"person_income": -1}, UNUSED, ORDERED_CATEGORIES),
}

def fit(X, y, monotone, unused, ordered, trees, learning_rate):
    clf = LGBMClassifier(n_estimators=trees, subsample_freq=1, random_state=42, n_jobs=1, verbose=-1,
                         **DEFAULT_PARAMS["lightgbm"] | dict(learning_rate=learning_rate),
                         monotone_constraints=[monotone.get(f, 0) for f in MODEL_FEATURES], monotone_constraints_method=MONOTONE_METHOD,
                         feature_contri=[0.0 if f in unused else 1.0 for f in MODEL_FEATURES])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.fit(X, y, categorical_feature=[c for c in CATEGORICAL_FEATURES if c not in ordered])

def age_violations(clf, rows: pd.DataFrame) -> tuple[int, float]:
    ages = np.arange(18, 101)
    grid = rows.loc[rows.index.repeat(len(ages))].assign(person_age=np.tile(ages, len(rows)).astype("float64"))
    typed = raw_features(grid)
    p = clf.predict_proba(pd.concat([typed, derived_features(typed)], axis=1))[:, 1].reshape(len(rows), len(ages))
    gap = p[:, ages >= 62].max(1) - p[:, ages < 62].min(1)
    return int((gap > 1e-9).sum()), float(max(gap.max(), 0))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/credit_risk_dataset.csv"))
    ap.add_argument("--trees", type=int, default=710)
    ap.add_argument("--learning-rate", type=float, default=0.05)
    a = ap.parse_args()
    s = split_data(training_frame(pd.read_csv(a.data)))
    X = {k: ApplicantFeatures().fit(v[FEATURES]).transform(v[FEATURES]) for k, v in s.items()}
    print(f"{len(s['train']):,} train, {len(s['validation']):,} validation, {len(s['test']):,} test rows; "
          f"{a.trees} trees at learning rate {a.learning_rate}")
    print(f"{'option':45} {'val AUC':>8} {'test AUC':>8}  62+ scored worse for age (of 500)")
    for name, (mono, unused, ordered) in OPTIONS.items():
        clf = fit(X["train"], s["train"][TARGET], mono, unused, ordered, a.trees, a.learning_rate)
        auc = {k: roc_auc_score(s[k][TARGET], clf.predict_proba(X[k])[:, 1]) for k in ("validation", "test")}
        n, gap = age_violations(clf, s["test"][FEATURES].iloc[:500])
        print(f"{name:45} {auc['validation']:8.4f} {auc['test']:8.4f}  {n}" + (f", by up to {gap:.2f}" if n else ""))

if __name__ == "__main__": main()

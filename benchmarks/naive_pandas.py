"""A naive pandas implementation of the case-finding rules, the baseline of case_finding.py.

Written as an analyst would in pandas: read each year's canonical stays and diagnoses, keep the
diagnoses that start with one of the spec's codes, flag the criteria, merge with the stays, group
by patient; the residence is the modal zone over the window (ties: the latest stay). One index
year. Same semantics as docs/case_finding.md (the sub-types are left out: they do not change who
is a case).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from respop.spec.algorithm import AlgorithmSpec, Criterion

STAY_COLS = ["stay_id", "patient_key", "exit_date", "age", "sex", "died", "residence_zone"]


def naive_cases(spec: AlgorithmSpec, stays_files: list[str], dx_files: list[str], index_year: int, first_year: int) -> pd.DataFrame:
    lookback = spec.window.lookback_years
    window = range(index_year - lookback, index_year + 1)
    prefixes = tuple(sorted({p for c in spec.criteria for p in c.codes}))
    stays_parts, dx_parts = [], []
    for sf, df in zip(stays_files, dx_files, strict=True):
        dx = pd.read_parquet(df, columns=["stay_id", "code", "position"])
        dx = dx[dx["code"].str.startswith(prefixes)].copy()
        dx["position"] = dx["position"].astype(str)
        dx_parts.append(dx)
        st = pd.read_parquet(sf, columns=STAY_COLS)
        st["exit_date"] = pd.to_datetime(st["exit_date"])
        st["year"] = st["exit_date"].dt.year
        stays_parts.append(st[st["year"].isin(window) | st["died"]])
    dx = pd.concat(dx_parts, ignore_index=True)
    stays = pd.concat(stays_parts, ignore_index=True)
    del dx_parts, stays_parts

    def flagged(c: Criterion) -> set:
        m = dx["position"].isin(c.positions) & dx["code"].str.startswith(tuple(c.codes))
        if c.exclude:
            m &= ~dx["code"].str.startswith(tuple(c.exclude))
        return set(dx.loc[m, "stay_id"])

    flag_sets = [flagged(c) for c in spec.criteria]
    candidates = pd.Index(dx["stay_id"].unique())
    flags = pd.DataFrame({i: candidates.isin(list(s)) for i, s in enumerate(flag_sets)}, index=candidates)

    def col(c: Criterion) -> pd.Series:
        return flags[spec.criterion_index(c)]

    qualifies = pd.Series(False, index=candidates)
    for b in spec.branches:
        ok = pd.Series(True, index=candidates)
        for c in b.all:
            ok &= col(c)
        for c in b.unless:
            ok &= ~col(c)
        qualifies |= ok
    for e in spec.exclude_stays:
        qualifies &= ~col(Criterion(codes=e.codes, exclude=e.exclude, positions=e.positions))
    q = stays[stays["stay_id"].isin(candidates[qualifies.to_numpy()]) & stays["year"].isin(window)]
    q = q[q["patient_key"].notna()]
    if spec.population.min_age is not None:
        q = q[q["age"] >= spec.population.min_age]
    if spec.population.max_age is not None:
        q = q[q["age"] <= spec.population.max_age]
    deaths = stays[stays["died"] & stays["patient_key"].notna()].groupby("patient_key")["year"].min()
    per_patient = q.groupby("patient_key").size().rename("qualifying_stays").reset_index()
    per_patient["death_year"] = per_patient["patient_key"].map(deaths)
    per_patient = per_patient[per_patient["death_year"].isna() | (per_patient["death_year"] >= index_year)]
    per_patient["is_case"] = per_patient["qualifying_stays"] >= spec.window.min_stays

    # residence: modal zone of all the patient's stays in the window, ties to the latest stay
    r = stays[stays["patient_key"].isin(per_patient["patient_key"]) & stays["year"].isin(window) & stays["residence_zone"].notna()]
    r = r.assign(order=r["exit_date"].to_numpy().astype("datetime64[D]").astype(np.int64) * 10**13 + r["stay_id"].to_numpy())
    z = r.groupby(["patient_key", "residence_zone"]).agg(n=("stay_id", "size"), last=("order", "max")).reset_index()
    z = z.sort_values(["patient_key", "n", "last"], ascending=[True, False, False]).drop_duplicates("patient_key")
    return per_patient.merge(z[["patient_key", "residence_zone"]], on="patient_key", how="left")

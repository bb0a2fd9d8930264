"""Two tables this project has never seen, shaped like the ones issue 14 tried, with their traps planted.

loans: a loan book stamped by month ("Mar-2016"), a German calendar, a boolean target that later loans do not have yet,
an undeclared leak (`total_pymnt`, paid back in full unless the loan defaulted), a post-outcome column (`recoveries`,
only there once the outcome is), a 1..N row number and a decimal-year copy of the time.
survey: a yearly survey (integer years), a text target with a positive label and 40% of rows without an answer, an
occupation code written as integers and declared categorical.

Each comes with its data contract; `write` puts the tables under data/own/ and the contracts under conf/data/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LOANS_CONTRACT = """\
name: loans
source: {package: null, path: data/own/loans.csv}
join: []
task: classification
target:
  name: defaulted
  column: defaulted
  greater_than: null
  positive: true
  known_after: 12 months
  max_missing_share: 0.2
time:
  column: issue_d
  format: "%b-%Y"
  timezone: null
  step: auto
  holidays: {country: DE, subdivision: null}
missing_values: [""]
drop: {identifiers: [], leaks: [], other: []}
types: {grade: categorical, purpose: categorical}
checks: {annual_inc: {min: 0}}
on_violation: error
sample_rows: null
sample_seed: 0
splits:
  train: {start: "2014-01-01", end: "2017-01-01"}
  test: {start: "2017-01-01", end: "2018-01-01"}
  reference: {start: "2014-01-01", end: "2015-01-01"}
  current: {start: "2017-01-01", end: "2018-01-01"}
"""

SURVEY_CONTRACT = """\
name: survey
source: {package: null, path: data/own/survey.csv}
join: []
task: classification
target:
  name: happy
  column: happy
  greater_than: null
  positive: "yes"
  known_after: 1 year
  max_missing_share: 0.3
time:
  column: year
  format: year
  timezone: null
  step: auto
  holidays: null
missing_values: [""]
drop: {identifiers: [], leaks: [], other: []}
types: {region: categorical, occupation: categorical}
checks: {age: {min: 18, max: 99}}
on_violation: error
sample_rows: null
sample_seed: 0
splits:
  train: {start: "1980-01-01", end: "2006-01-01"}
  test: {start: "2006-01-01", end: "2016-01-01"}
  reference: {start: "1980-01-01", end: "1990-01-01"}
  current: {start: "2006-01-01", end: "2016-01-01"}
"""

GRADES = np.array(list("ABCDEFG"))
PURPOSES = np.array(["car", "credit_card", "debt", "home", "medical", "other"])


def loans(rows_per_month: int = 60, seed: int = 0) -> pd.DataFrame:
    """48 months, 2014-2017 (plus 2018 without outcomes yet): default risk rises with grade and debt-to-income."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2014-01-01", "2018-06-01", freq="MS")
    issued = np.repeat(months, rows_per_month)
    count = len(issued)
    grade = rng.integers(0, len(GRADES), count)
    dti = rng.gamma(4.0, 4.0, count)
    income = np.round(rng.lognormal(10.8, 0.5, count), -2)
    risk = -3.2 + 0.45 * grade + 0.04 * dti - 0.3 * np.log(income / 50000)
    defaulted = rng.random(count) < 1 / (1 + np.exp(-risk))
    amount = np.round(rng.uniform(2000, 35000, count), -2)
    unknown = issued >= pd.Timestamp("2018-01-01")  # too recent: the outcome is not known yet
    paid = np.where(defaulted, amount * rng.uniform(0.1, 0.6, count), amount * rng.uniform(1.05, 1.25, count))
    recovered = np.where(defaulted, np.round(paid * rng.uniform(0.0, 0.2, count), 2), 0.0)
    year_fraction = issued.year + (issued.month - 1) / 12
    return pd.DataFrame(
        {
            "loan_id": np.arange(1, count + 1),  # a row number: unique per row, increasing with time
            "issue_d": issued.strftime("%b-%Y"),
            "issue_year": np.round(year_fraction, 4),  # the time again, as a decimal year
            "grade": GRADES[grade],
            "purpose": PURPOSES[rng.integers(0, len(PURPOSES), count)],
            "annual_inc": income,
            "dti": np.round(dti, 2),
            "loan_amnt": amount,
            "total_pymnt": np.where(unknown, np.nan, np.round(paid, 2)),  # undeclared leak
            "recoveries": np.where(unknown, np.nan, recovered),  # only there once the outcome is
            "defaulted": pd.array(np.where(unknown, None, defaulted), dtype="boolean"),
        }
    )


def survey(respondents_per_year: int = 120, seed: int = 1) -> pd.DataFrame:
    """1980-2015, one row per respondent, a yes/no answer that 40% did not give."""
    rng = np.random.default_rng(seed)
    years = np.repeat(np.arange(1980, 2016), respondents_per_year)
    count = len(years)
    region = rng.choice(["north", "south", "east", "west"], count)
    occupation = rng.integers(10, 40, count)  # a code, not a quantity
    age = rng.integers(18, 90, count)
    income = np.round(rng.lognormal(10.2, 0.6, count), -2)
    logit = -0.6 + 1.2 * (region == "south") + 0.3 * (occupation % 7 - 3) + 0.5 * np.log(income / 20000)
    happy = np.where(rng.random(count) < 1 / (1 + np.exp(-logit)), "yes", "no").astype(object)
    happy[rng.random(count) < 0.4] = None
    return pd.DataFrame({"year": years, "region": region, "occupation": occupation, "age": age, "income": income, "happy": happy})


def write(project: Path) -> None:
    """The two tables under project/data/own/ and their contracts under project/conf/data/."""
    folder = project / "data/own"
    folder.mkdir(parents=True, exist_ok=True)
    loans().to_csv(folder / "loans.csv", index=False)
    survey().to_csv(folder / "survey.csv", index=False)
    (project / "conf/data/loans.yaml").write_text(LOANS_CONTRACT)
    (project / "conf/data/survey.yaml").write_text(SURVEY_CONTRACT)

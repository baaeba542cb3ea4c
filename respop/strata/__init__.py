"""Risk strata: profiles of the cases per year, care use, transitions, survival and prediction."""

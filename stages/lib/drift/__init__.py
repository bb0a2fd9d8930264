"""Drift of a current sample against a reference, column by column, computed with NumPy.

One job per module:
- `result`: what a drift check finds (`ColumnDrift`, `DriftResult`) and its JSON form;
- `kernel`: the compiled merge walk that gives the exact KS statistic and Wasserstein-1 distance;
- `statistics`: every statistic of a numeric or categorical column (KS, Wasserstein, PSI, chi-squared, ...);
- `p_values`: KS and chi-squared p-values as arrays, and the Benjamini-Hochberg adjustment;
- `methods`: the table of verdict methods (name, column kind, statistic, threshold key, direction);
- `columns`: one column's statistics, compared as numbers or as categories;
- `histograms`: the reference and current shares the plots and the HTML report draw;
- `verdict`: p-values adjusted over all columns, then each column's verdict by its method;
- `detect`: every column, in threads, then the verdicts.
"""

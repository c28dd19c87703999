"""Results as data: the timeline (columnar rows, DataFrame, Parquet/CSV/JSONL) and the summary.

Shared by the offline replay and live mode, so both report in one format.
"""

"""The append-only experiment log: history.jsonl (truth), attempts.db (index), blobs/."""

from ksearch.log.history import HISTORY, History, history_path, iter_rows
from ksearch.log.index import build_index, query
from ksearch.log.rundir import make_run_dir, new_run_id, put_blob, read_blob
from ksearch.log.stats import export_table, log_stats
from ksearch.log.verify import VerifyReport, verify_log

__all__ = [
    "HISTORY",
    "History",
    "VerifyReport",
    "build_index",
    "export_table",
    "history_path",
    "iter_rows",
    "log_stats",
    "make_run_dir",
    "new_run_id",
    "put_blob",
    "query",
    "read_blob",
    "verify_log",
]

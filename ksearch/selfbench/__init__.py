"""Tools that measure ksearch itself, apart from the verbs they measure.

- `harness_bench`: `ksearch bench harness` (timing stability, agreement with ncu, overhead, the
  honest and cheat corpora);
- `compile_bench`: `ksearch bench compile` (compiles per minute, cold and warm);
- `log_bench`: `ksearch bench log` (append, index and query figures of the experiment log);
- `gpu_selfcheck`: `python -m ksearch.selfbench.gpu_selfcheck --out DIR` (what the timing harness
  promises, measured on the first GPU);
- `synthetic_log`: `python -m ksearch.selfbench.synthetic_log DIR` (synthetic run logs for testing
  and benchmarking the mining tools).

Nothing in the search imports these; they sit above every verb they use.
"""

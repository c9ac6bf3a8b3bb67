"""What reads a run's log and also needs the verbs above the store (the world model, the harness,
the templates): the full check of a run, replay, report, serve, memory distillation, the curve.

Layer order, each importing only those below it:
    errors, evidence  <  log (the store: history, rows, index, stats, verify, rundir, lock)
    <  worldmodel, harness, propose  <  analysis, search  <  cli
"""

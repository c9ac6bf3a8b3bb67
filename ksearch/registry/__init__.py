"""The kernel library: `ksearch export` writes the winners of runs as an installable package, and
`ksearch registry` explains its selection. `select`, `runtime` and `pkg_registry` are copied into
every exported package, so they import nothing from ksearch (runtime needs torch)."""

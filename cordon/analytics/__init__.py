"""Pure analytics for the command centre: epidemic curve, Rt, forecasts, pool planning.

Nothing here imports Django: callers (services, tasks, the CLI) read the database and the policy,
then hand plain sequences and numbers to these functions. That keeps the numerics testable
against published reference implementations without a database, and lets the same code run in
a worker, a notebook or a benchmark.
"""

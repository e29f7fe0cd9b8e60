"""Capacity planning: sweeps over hardware × parallelism × batch × dtypes × models × loads, SLO-constrained plans
with cost and energy, and Pareto fronts.

    sweep_spec.py   the sweep YAML (axes, listed points, spec overrides by dotted path) and its expansion
    overrides.py    one spec field changed by dotted path, through pydantic validation
    evaluate.py     one point (analytic, des or serving) to one tidy row; what a worker runs
    runner.py       points in chunks on a process pool or a Dask cluster, resumable, with a progress bar
    results.py      the results file (.parquet or .csv)
    pricing.py      cost per hour and per million tokens from a spec's price per device-hour
    replicas.py     the hardware one replica of N chips runs on (a server, or servers over scale-out links)
    search.py       the cheapest configuration per candidate chip that meets TTFT and TPOT SLOs
    pareto.py       Pareto fronts of a sweep: throughput per chip and cost against latency
    optional.py     the optional packages (pyarrow, dask) imported on demand
"""

"""Planning: map a profile's layers onto PEs as contiguous pipeline stages.

`cost.evaluate` is the contract's one cost function; `optimal`, `heuristic` and `baselines` are
planners that all return `cost.Plan`s. Pure functions, no threads.
"""

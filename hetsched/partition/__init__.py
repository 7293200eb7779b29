"""Planning: map a profile's layers onto PEs as contiguous pipeline stages.

`cost.evaluate` is the contract's one cost function; `optimal`, `heuristic` and `baselines` are
planners that all return `cost.Plan`s. Pure functions, no threads.
"""

from __future__ import annotations

from ..profile import Profile
from .cost import DEFAULT_MAX_STAGES, Plan, PlanError


def _methods():
    from . import baselines, heuristic, optimal
    return {"heuristic": heuristic.solve, "optimal": optimal.solve, "single": baselines.single,
            "replicate": baselines.replicate, "even": baselines.even}


METHODS = ("heuristic", "optimal", "single", "replicate", "even")


def make_plan(profile: Profile, method: str = "heuristic", *, pes=None, replication=True,
              max_stages=DEFAULT_MAX_STAGES, **extra) -> Plan:
    solvers = _methods()
    if method not in solvers:
        raise PlanError(f"unknown planning method '{method}' (known: {', '.join(METHODS)})")
    if max_stages < 1:
        raise PlanError(f"max_stages must be at least 1, got {max_stages}")
    return solvers[method](profile, pes=pes, replication=replication, max_stages=max_stages, **extra)

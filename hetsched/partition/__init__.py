"""Planning: map a profile's layers onto PEs as contiguous pipeline stages.

`cost.evaluate` is the contract's one cost function; `optimal`, `heuristic` and `baselines` are
planners that all return `cost.Plan`s. Pure functions, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..profile import Profile
from .cost import DEFAULT_MAX_STAGES, Plan, PlanError, better, mixes_kinds


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


@dataclass
class Attempts:
    """Every method tried on one profile: the plans found, and why the others found none."""
    plans: dict[str, Plan] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    lower_bound_ms: float | None = None    # what a timed-out exact search proved
    # methods whose plan a stage mixes PE kinds in (the replicate baseline's GPU + DLA copies):
    # compared, never chosen, since the contract, `run` and `simulate` refuse such a plan
    outside: set[str] = field(default_factory=set)

    @property
    def optimum(self) -> Plan | None:
        """The exact search's plan where it proved it optimal."""
        plan = self.plans.get("optimal")
        return plan if plan is not None and plan.proven else None

    def best(self) -> Plan:
        """The best-priced plan under the contract's order (`cost.better`) among those the
        contract allows."""
        allowed = [p for m, p in self.plans.items() if m not in self.outside]
        if not allowed:
            raise PlanError("no planning method found a plan: "
                            + "; ".join(f"{m}: {e}" for m, e in self.errors.items()))
        best = None
        for plan in allowed:
            if better(plan, best):
                best = plan
        return best


def plan_every(profile: Profile, methods=METHODS, *, time_limit_s: float | None = None,
               require_proof: bool = False, **opts) -> Attempts:
    """`make_plan` with each of `methods`, in order; `time_limit_s` and `require_proof` go to
    the exact search."""
    out = Attempts()
    for method in methods:
        extra = {}
        if method == "optimal":
            extra["require_proof"] = require_proof
            if time_limit_s:
                extra["time_limit_s"] = time_limit_s
        try:
            plan = out.plans[method] = make_plan(profile, method, **opts, **extra)
            if mixes_kinds(profile, plan):
                out.outside.add(method)
            if plan.proven is False:
                out.lower_bound_ms = plan.lower_bound_ms
        except PlanError as e:
            out.errors[method] = str(e)
            out.lower_bound_ms = getattr(e, "lower_bound_ms", out.lower_bound_ms)
    return out

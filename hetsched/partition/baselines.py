"""Baselines a user compares a plan against.

- `single`: the whole network on the one best PE. A good planner must be able to say "one PE is
  best here" (JEDI saw it for tiny networks).
- `replicate`: whole-network copies on PEs that can run all of it, frames round robin, as NVIDIA's
  jetson_benchmarks runs GPU + DLA0 + DLA1; of the capable PEs, the subset that serves the most
  frames (under round robin a slow copy holds every other one back, and nobody would add it).
  Its PEs may be of different kinds, which the contract does not allow inside one plan stage, so
  this plan is priced by the contract's formula but is not a contract plan (each of k members
  serves one frame in k: load = T(p) / k): `plan_every` compares it but never chooses it, and
  `hetsched plan` will not write it to a plan file.
- `even`: equal-FLOP stages on the allowed PEs in the profile's order.
"""

from __future__ import annotations

import time
from itertools import combinations

import numpy as np

from ..profile import Profile
from .cost import (DEFAULT_MAX_STAGES, Plan, PlanError, Stage, better, evaluate, fallback_gpu,
                   runnable, subgraph_excess)
from .groups import allowed_pes, check_feasible


def _best_copies(profile: Profile, pes, method: str, sizes, dla_fallback: bool = False) -> Plan:
    """The best whole-network plan over `sizes` PEs (round robin when more than one) among the
    allowed PEs that can run every layer (a DLA with `dla_fallback`: what it cannot run, the GPU
    runs, as jetson_benchmarks' DLA copies do)."""
    t0 = time.perf_counter()
    names = allowed_pes(profile, pes)
    check_feasible(profile, names)
    gpu = fallback_gpu(profile, names) if dla_fallback else None
    last = len(profile.layers) - 1
    excess = {p: subgraph_excess(profile, [Stage((p,), 0, last)], dla_fallback) for p in names}
    capable = [p for p in names if not excess[p] and all(runnable(profile, (p,), i, gpu)
                                                         for i in range(len(profile.layers)))]
    if not capable:
        why = next((w for w in excess.values() if w), None)
        raise PlanError(f"no PE of {', '.join(names)} can run every layer on its own"
                        + (f" ({why})" if why else ""))
    best = None
    for k in sizes(len(capable)):
        for members in combinations(capable, k):
            plan = evaluate(profile, [Stage(members, 0, last)], method, check=False,
                            pes=names, dla_fallback=dla_fallback)
            if better(plan, best):
                best = plan
    best.solve_ms = (time.perf_counter() - t0) * 1e3
    return best


def single(profile: Profile, *, pes=None, replication=True, max_stages=DEFAULT_MAX_STAGES,
           dla_fallback=False) -> Plan:
    return _best_copies(profile, pes, "single", lambda n: [1], dla_fallback)


def replicate(profile: Profile, *, pes=None, replication=True, max_stages=DEFAULT_MAX_STAGES,
              dla_fallback=False) -> Plan:
    """Without replication, one copy: the same plan as `single`."""
    sizes = (lambda n: range(1, n + 1)) if replication else (lambda n: [1])
    return _best_copies(profile, pes, "replicate", sizes, dla_fallback)


def even(profile: Profile, *, pes=None, replication=True, max_stages=DEFAULT_MAX_STAGES,
         dla_fallback=False) -> Plan:
    t0 = time.perf_counter()
    names = allowed_pes(profile, pes)
    check_feasible(profile, names)
    n = len(profile.layers)
    k = min(len(names), max_stages, n)
    work = np.array([_flops(profile, i, names) for i in range(n)], dtype=float)
    cum = np.cumsum(work)
    targets = cum[-1] * np.arange(1, k) / k
    cuts = sorted(set(int(np.searchsorted(cum, t, side="left")) + 1 for t in targets))
    cuts = [c for c in cuts if 0 < c < n]
    edges = [0, *cuts, n]
    stages = [Stage((names[j],), edges[j], edges[j + 1] - 1) for j in range(len(edges) - 1)]
    gpu = fallback_gpu(profile, names) if dla_fallback else None
    for s in stages:
        for i in range(s.first, s.last + 1):
            if not runnable(profile, s.pes, i, gpu):
                raise PlanError(f"even split puts layer {i} '{profile.layers[i].name}' on "
                                f"{s.pes[0]}, which cannot run it")
    plan = evaluate(profile, stages, "even", pes=names, max_stages=max_stages,
                    dla_fallback=dla_fallback)
    plan.solve_ms = (time.perf_counter() - t0) * 1e3
    return plan


def _flops(profile: Profile, i: int, names) -> float:
    """A layer's FLOPs where the profile has them, else its mean cost as a stand-in."""
    layer = profile.layers[i]
    if "flops" in layer.extra:
        return float(layer.extra["flops"])
    costs = [layer.cost_ms[p] for p in names if layer.cost_ms.get(p) is not None]
    return float(np.mean(costs)) if costs else 0.0

"""A plan and a model become pipeline stages: the graph is split at the plan's cuts, and each PE
of each stage gets a worker that opens the right engine for it on its own thread.

Which engine a PE gets: CPU PEs of a measured profile run onnxruntime pinned to their cores; a PE
of another kind runs its kind's default backend, or is *emulated* when this machine lacks it
(no NVIDIA GPU found) or when asked; every PE of a modeled profile is emulated, since its board
is not this machine. An emulated PE holds each frame for the stage time the contract charges it
(compute + transfers in and out), so the emulation needs the profile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..engines import DEFAULT_BACKEND, EngineOptions, backend
from ..errors import HetschedError
from ..graph import Graph
from ..partition.cost import Stage as PlanStage
from ..partition.cost import evaluate
from ..profile import Profile
from ..profiler.pes import cpu_pe
from .pipeline import Stage, Worker

log = logging.getLogger(__name__)


@dataclass
class Placement:
    """How each PE of a plan is run: backend name, cores to pin, emulated stage times."""
    backends: dict[str, str]
    cores: dict[str, list[int] | None]
    emulated: set[str]


def _gpu_present() -> bool:
    from ..devices import gpus
    return bool(gpus().get("present"))


def place(plan_stages: list[PlanStage], profile: Profile | None, *, emulate: bool = False,
          backends: dict[str, str] | None = None) -> Placement:
    names = list(dict.fromkeys(pe for s in plan_stages for pe in s.pes))
    kinds = {}
    for pe in names:
        if profile is not None:
            if pe not in profile.pes:
                raise HetschedError(f"the plan names PE '{pe}', which the profile does not have "
                                    f"(it has {', '.join(profile.pes)})")
            kinds[pe] = profile.pes[pe].kind
        elif pe.startswith("cpu"):
            kinds[pe] = "cpu"
        else:
            raise HetschedError(f"PE '{pe}' is not a CPU of this machine; give the profile "
                                f"(--profile) so it can be emulated")
    modeled = profile is not None and profile.source == "modeled"
    gpu = None
    out = Placement({}, {}, set())
    for pe in names:
        if emulate or modeled:
            out.emulated.add(pe)
        elif kinds[pe] == "cpu":
            out.cores[pe] = cpu_pe(pe).extra["cores"]   # errors if this machine lacks the cores
        else:
            gpu = _gpu_present() if gpu is None else gpu
            if not gpu:
                log.warning("no NVIDIA GPU here: %s (%s) is emulated from the profile", pe, kinds[pe])
                out.emulated.add(pe)
        if pe in out.emulated:
            out.backends[pe] = "emulated"
            out.cores.setdefault(pe, None)
        else:
            out.backends[pe] = (backends or {}).get(pe) or DEFAULT_BACKEND[kinds[pe]]
            out.cores.setdefault(pe, None)
    if out.emulated and profile is None:
        raise HetschedError(f"PE(s) {sorted(out.emulated)} are emulated, which needs the profile "
                            f"(their stage times come from it)")
    return out


def keep_sets(graph: Graph, plan_stages: list[PlanStage]) -> list[frozenset[str]]:
    """After stage j, the tensors a later stage reads plus the graph outputs made so far."""
    outs = set(graph.outputs)
    sets = []
    for s in plan_stages:
        later = {t for layer in graph.layers[s.last + 1:] for t in layer.inputs}
        made = {t for layer in graph.layers[: s.last + 1] for t in layer.outputs}
        sets.append(frozenset((later | outs) & (made | set(graph.inputs))))
    return sets


def build_stages(graph: Graph, plan_stages: list[PlanStage], placement: Placement,
                 opts: EngineOptions, profile: Profile | None = None,
                 dla_fallback: bool = False) -> list[Stage]:
    if plan_stages[-1].last != len(graph) - 1 or plan_stages[0].first != 0:
        raise HetschedError(f"the plan covers layers {plan_stages[0].first}..{plan_stages[-1].last}"
                            f", the model has 0..{len(graph) - 1}")
    subs = graph.split([s.first for s in plan_stages[1:]])
    hold = {}
    if placement.emulated:
        priced = evaluate(profile, plan_stages, check=False, dla_fallback=dla_fallback)
        hold = {(j, pe): c.time_ms(pe) for j, c in enumerate(priced.stage_costs) for pe in c.compute_ms}
    stages = []
    for j, (s, sub, keep) in enumerate(zip(plan_stages, subs, keep_sets(graph, plan_stages))):
        workers = []
        for pe in s.pes:
            name = placement.backends[pe]
            extra = {"hold_ms": hold[(j, pe)]} if name == "emulated" else {}

            def opener(sub=sub, pe=pe, name=name, extra=extra):
                return backend(name)(sub, pe, opts, **extra)
            workers.append(Worker(pe, opener, placement.cores.get(pe)))
        stages.append(Stage(workers, keep))
    return stages

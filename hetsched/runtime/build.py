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
from ..cores import cpu_pe
from .pipeline import Stage, Worker

log = logging.getLogger(__name__)


@dataclass
class Placement:
    """How each PE of a plan is run: backend name, cores to pin, emulated stage times."""
    backends: dict[str, str]
    cores: dict[str, list[int] | None]
    emulated: set[str]
    why: dict[str, str] = None     # emulated PE -> why it is

    def emulation_note(self) -> str | None:
        """One line for the user, or None when every PE runs for real."""
        if not self.emulated:
            return None
        by: dict[str, list[str]] = {}
        for pe in sorted(self.emulated):
            by.setdefault((self.why or {}).get(pe, "asked"), []).append(pe)
        return "emulating " + "; ".join(f"{', '.join(pes)} ({why})" for why, pes in by.items()) \
            + ": their stage times are replayed from the profile, not measured"


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
    out = Placement({}, {}, set(), {})
    for pe in names:
        if emulate:
            out.emulated.add(pe)
            out.why[pe] = "asked for"
        elif modeled:
            out.emulated.add(pe)
            out.why[pe] = f"the profile is modeled for {profile.board.get('name', 'another board')}"
        elif kinds[pe] == "cpu":
            out.cores[pe] = cpu_pe(pe).extra["cores"]   # errors if this machine lacks the cores
        else:
            gpu = _gpu_present() if gpu is None else gpu
            if not gpu:
                out.emulated.add(pe)
                out.why[pe] = f"{kinds[pe]}: no NVIDIA GPU here"
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


def keep_sets(graph: Graph, spans: list[tuple[int, int]]) -> list[frozenset[str]]:
    """After each network span (first, last; empty when last < first), the tensors a later span
    reads plus the graph outputs made so far (Postprocess and `--dump` read those)."""
    outs = set(graph.outputs)
    sets = []
    for first, last in spans:
        end = max(last, first - 1)
        later = {t for layer in graph.layers[end + 1:] for t in layer.inputs}
        made = {t for layer in graph.layers[: end + 1] for t in layer.outputs}
        sets.append(frozenset((later | outs) & (made | set(graph.inputs))))
    return sets


class _Nothing:
    """The engine of a stage that holds only the planned Preprocess or Postprocess."""

    def __init__(self, pe):
        self.pe, self.input_names, self.output_names = pe, [], []

    def run(self, feeds):
        return {}

    def close(self):
        pass


def network_spans(plan_stages: list[PlanStage], n_layers: int, loop: bool) -> list[tuple[int, int]]:
    """Each stage's span of network layers: the plan's own for a network profile; for a pipeline
    profile (Preprocess first, Postprocess last) shifted past the Preprocess, and possibly
    empty (last < first) for a stage that holds only pre- or post-processing."""
    if not loop:
        return [(s.first, s.last) for s in plan_stages]
    return [(max(s.first, 1) - 1, min(s.last, n_layers - 2) - 1) for s in plan_stages]


def build_stages(graph: Graph, plan_stages: list[PlanStage], placement: Placement,
                 opts: EngineOptions, profile: Profile | None = None,
                 dla_fallback: bool = False, pre=None, post=None) -> list[Stage]:
    """The runtime's stages for a plan. With a pipeline profile, `pre` and `post` (the task's
    pre- and post-processing) run in the stages the plan gives its Preprocess and Postprocess."""
    loop = profile is not None and profile.is_pipeline()
    n = len(profile.layers) if loop else len(graph)
    if plan_stages[-1].last != n - 1 or plan_stages[0].first != 0:
        raise HetschedError(f"the plan covers layers {plan_stages[0].first}..{plan_stages[-1].last}"
                            f", the {'pipeline profile' if loop else 'model'} has 0..{n - 1}")
    if loop and (pre is None or post is None):
        raise HetschedError("a pipeline profile's plan needs the task's pre- and post-processing")
    spans = network_spans(plan_stages, n, loop)
    hold = {}
    if placement.emulated:
        priced = evaluate(profile, plan_stages, check=False, dla_fallback=dla_fallback)
        hold = {(j, pe): c.time_ms(pe) for j, c in enumerate(priced.stage_costs) for pe in c.compute_ms}
    stages = []
    for j, (s, (a, b), keep) in enumerate(zip(plan_stages, spans, keep_sets(graph, spans))):
        sub = graph.submodel(a, b) if a <= b else None
        workers = []
        for pe in s.pes:
            name = placement.backends[pe]
            extra = {"hold_ms": hold[(j, pe)]} if name == "emulated" else {}

            def opener(sub=sub, pe=pe, name=name, extra=extra):
                if sub is None:
                    return _Nothing(pe)
                return backend(name)(sub, pe, opts, **extra)
            workers.append(Worker(pe, opener, placement.cores.get(pe)))
        stages.append(Stage(workers, keep, pre if loop and s.first == 0 else None,
                            post if loop and s.last == n - 1 else None))
    return stages

"""The exactly optimal plan under the contract (section 4): minimum bottleneck, ties to the lower
latency, then to fewer stages.

Why not the textbook dynamic program over (boundary, set of PEs used): the contract lets a PE
serve several non-adjacent stages (JEDI's GPU, DLA0, DLA1, GPU) and charges a tensor that skips
stages by the PE of the stage that produced it, so a stage's cost depends on more than its own
boundaries and PE. The search walks `stategraph`'s layered graph instead, one layer at a time,
keeping for each state the Pareto frontier of the per-PE load vectors of the partial plans that
reach it and its stage count (numpy arrays with back-pointers, all states of a layer in one
array). Since the bottleneck is the largest load, a partial plan whose loads and stage count are
all no higher than another's in the same state can never finish behind it, so dropping the other
keeps the search exact; so does dropping one whose `completion` bound (the Lagrangian bound of
the rest, exact about stage limits and transfers) exceeds the sweep's bound.

The search finds the minimum bottleneck B*. A known plan comes first: the better of the
heuristic's and beam searches over the same graph (the same sweep keeping only the few best
partial plans per state by their bound), usually the optimum or within a few percent of it. The
sweep's bound then climbs from the root's proven lower bound towards that plan (`_search`, in
steps set by how fast the sweeps' cost grows): every plan with bottleneck <= the bound survives a
sweep, so the first sweep that finds a plan has found the optimum, and one that finds none
proves the optimum lies above its bound. This pays because a sweep's frontier grows steeply with
its bound (on yolov2 over the modeled Xavier's four PEs: 0.4 s at B*, 18 s at the beam's plan
2.2% above it). Every sweep keeps latency as one more label coordinate, never pruned by, so the
sweep that finds the optimum also breaks its ties by the contract's order. (Until 2026-12-07 a
second sweep bounded by B* broke them, with latency bounded by the first plan's and by the least
latency the rest could add; side by side, 10 s, tracking latency in every sweep instead proved
skip-heavy 60 x 4 at 6 stages in 5.6 s against 7.1 and 120 x 4 in 4.3 s against 5.3, the zoo
profiles as fast as before.)

Complexity: building the graph is O(n * S * G * D) for n layers, S states per layer (G groups
times the sources of the live tensors, which detection networks keep at 1-4) and D PEs; the bound
is O(n * S * G * K * W) for K stages and W weights; each sweep is O(n * S * G * F * W) plus the
Pareto filters, O(F^2 * D) per state, for frontiers of F labels. F is exponential in the worst
case: once a PE may serve several stages, balancing is a partition problem (the general mapping
of a pipeline onto heterogeneous processors is NP-hard, Benoit and Robert, JPDC 2008), and every
split of the work that the bound cannot refute stays on the frontier. Where the state graph
would outgrow half the free memory (`_max_arcs`) or a quarter of the time, the sweeps walk only
the states their plans reach instead (`_search_space`). The search stops at `time_limit_s`
(checked inside each layer's work, and a step that cannot be interrupted starts only if it
should end before the limit, so the limit is a wall) and answers with the best plan it knows,
marked unproven, with the lower bound it did prove (or, `require_proof`, raises
`OptimumUnproven` carrying that bound);
scripts/partition_bench.py reports where it finishes (every zoo profile and a random 300-layer
4-PE one within 5 s on the 2-core VM; not a random 300 x 5 or detector-shaped 300 x 4 one).
"""

from __future__ import annotations

import time

import numpy as np

from ..profile import Profile
from . import completion, pareto, relaxation, stategraph
from .cost import DEFAULT_MAX_STAGES, Plan, PlanError, Stage, better, evaluate
from .groups import allowed_pes, check_feasible, pe_sets, stage_groups, stages_from_path

_TIE = 1e-9
DEFAULT_TIME_LIMIT_S = 10.0
BEAM_WIDTH = 4
MAX_BEAM_WIDTH = 256
_FRONTIER_S = 0.5
_INFORMATIVE_S = 0.05   # phase 1's sweeps quicker than this say nothing about how costs grow
_CHUNK = 65536      # candidate rows per bound evaluation (memory: rows x weights floats)
_RELAXED_ARCS = 2_000_000   # the largest relaxed graph a walked search is bounded by


def _max_arcs(npe: int, groups: int, weights: int, max_stages: int) -> int:
    """The largest state graph worth building: its arcs (the PE loads and latency, four
    indices) and the bound tables over its states (a row of weights x stage counts per state,
    counted as one state per half the groups' arcs; 2-5 arcs a state were measured; 8 bytes an
    entry, twice the float32 tables', for the arrays a layer makes on the way) within half the
    memory available now."""
    import psutil
    per_arc = 8 * (npe + 1) + 32 + 8 * weights * (max_stages + 1) * 2 // max(1, groups)
    return int(psutil.virtual_memory().available // 2 // per_arc)


class OptimumUnproven(PlanError):
    """The exact search stopped at its time limit; `lower_bound_ms` is what it did prove (no plan
    has a smaller bottleneck), so a heuristic plan's distance from the optimum is bounded."""

    def __init__(self, message: str, lower_bound_ms: float):
        super().__init__(message)
        self.lower_bound_ms = lower_bound_ms


def solve(profile: Profile, *, pes: list[str] | None = None, replication: bool = True,
          max_stages: int = DEFAULT_MAX_STAGES, upper_bound: float | None = None,
          time_limit_s: float | None = DEFAULT_TIME_LIMIT_S, dla_fallback: bool = False,
          require_proof: bool = False) -> Plan:
    """The optimal plan (`proven=True`). `upper_bound` (ms) prunes the search and must be the
    bottleneck of a feasible plan or more; by default the heuristic's and a beam search's plans
    provide it. At `time_limit_s` (a wall: the call returns within about 0.5 s of it) the search
    returns the best plan it knows, the heuristic's at least, with `proven=False`, the lower
    bound it proved and the gap between them; with `require_proof`, or when it knows no plan,
    it raises `OptimumUnproven` carrying that bound instead.

    Contention makes the cost depend on the set of PEs a plan uses, so the search runs once per
    set of `groups.pe_sets` (2^c for c PEs that contention involves; once without contention),
    each priced with that set's factors, cheapest lower bound first; a set whose bound exceeds
    the best plan found so far is refuted without a search. Each set's winner is re-priced by
    `cost.evaluate` and the best under the contract's order is returned."""
    if dla_fallback:
        raise PlanError("the optimal planner prices the contract's strict plans only; "
                        "--dla-fallback plans come from the heuristic and the baselines")
    t0 = time.perf_counter()
    names = allowed_pes(profile, pes)
    check_feasible(profile, names)
    clock = _Clock(None if time_limit_s is None else t0 + time_limit_s, len(profile.layers))
    given = upper_bound is not None
    known = None if given else _heuristic_plan(profile, names, replication, max_stages)
    incumbent = upper_bound if given else (known.bottleneck_ms if known else np.inf)
    floor = work_bound(profile, names)
    try:
        return _solve(profile, names, replication, max_stages, clock, given, upper_bound,
                      incumbent, known, t0)
    except OptimumUnproven as e:
        lb = max(e.lower_bound_ms, floor)
        best = _best_known(profile, names, max_stages, replication, known, clock.known)
        if require_proof or best is None:
            raise OptimumUnproven(str(e).rsplit("proven:", 1)[0] + f"proven: optimum >= {lb:.4f} ms"
                                  if "proven:" in str(e) else str(e), lb) from None
        best.method, best.proven = "optimal", False
        best.lower_bound_ms = min(lb, best.bottleneck_ms)
        best.solve_ms = (time.perf_counter() - t0) * 1e3
        return best


def work_bound(profile: Profile, names: list[str]) -> float:
    """A bound no plan beats, whatever the search managed: every layer's cheapest compute must
    be done somewhere, so the busiest of the D PEs carries at least the sum over layers of that
    over D; and a layer's cheapest run, split over at most every PE of its kind, is at least
    one frame's share of some PE's load. (Contention factors >= 1, overheads and transfers >= 0
    only add to both.)"""
    kinds: dict[str, int] = {}
    for p in names:
        kinds[profile.pes[p].kind] = kinds.get(profile.pes[p].kind, 0) + 1
    total, single = 0.0, 0.0
    for layer in profile.layers:
        costs = [(layer.cost_ms[p], p) for p in names if layer.cost_ms.get(p) is not None]
        if not costs:
            continue
        total += min(c for c, _ in costs)
        single = max(single, min(c / kinds[profile.pes[p].kind] for c, p in costs))
    return max(total / max(len(names), 1), single)


def _best_known(profile, names, max_stages, replication, known: Plan | None, found) -> Plan | None:
    """The better of the heuristic's plan and the plans the search met (beam plans and the
    winners of PE sets it finished), each re-priced by the contract's evaluator."""
    best = known
    for stages in found:
        try:
            plan = evaluate(profile, stages, "optimal", pes=names, max_stages=max_stages,
                            replication=replication)
        except PlanError:
            continue
        if better(plan, best):
            best = plan
    if best is not None:
        best = evaluate(profile, best.stages, "optimal", pes=names, max_stages=max_stages,
                        replication=replication)
    return best


def _solve(profile, names, replication, max_stages, clock, given, upper_bound, incumbent, known,
           t0) -> Plan:
    problems = []
    for subset in pe_sets(profile, names):
        try:
            check_feasible(profile, subset)
        except PlanError:
            continue
        groups = stage_groups(profile, subset, replication)
        rest = completion.Rest(profile, subset, groups)
        weights = completion.search_weights(
            rest, len(subset), max_stages, deadline_check=lambda r: clock.check("weighing the bound"))
        lower = max(float(rest.root(rest.weighted(weights, max_stages), weights).max()), rest.floor)
        if np.isfinite(lower):
            problems.append((lower, subset, groups, rest, weights))
    if not problems:
        raise PlanError(f"no plan with at most {max_stages} stages can run every layer on "
                        f"{', '.join(names)}")
    problems.sort(key=lambda x: x[0])
    proven = {k: lower for k, (lower, *_rest) in enumerate(problems)}   # per set, what it proved
    best: Plan | None = None
    for k, (lower, subset, groups, rest, weights) in enumerate(problems):
        if lower > incumbent * (1 + 2 * _TIE) + 1e-12:
            proven[k] = incumbent      # refuted: nothing there beats the incumbent
            continue
        try:
            found = _solve_set(profile, subset, groups, rest, weights, max_stages, clock, lower,
                               incumbent, not given and best is None, len(problems) - k)
        except OptimumUnproven as e:
            proven[k] = e.lower_bound_ms
            lb = min(min(proven.values()), incumbent)
            raise OptimumUnproven(str(e), lb) from None
        if found is None:
            proven[k] = incumbent
            continue
        clock.known.append(found)
        plan = evaluate(profile, found, "optimal", pes=names, max_stages=max_stages,
                        replication=replication)
        proven[k] = plan.bottleneck_ms
        if better(plan, best):
            best = plan
        incumbent = min(incumbent, plan.bottleneck_ms)
    if best is None:
        if given:
            raise PlanError(f"no plan has a bottleneck at or below the given upper bound "
                            f"({upper_bound:.4f} ms)")
        raise PlanError(f"no plan with at most {max_stages} stages can run every layer on "
                        f"{', '.join(names)}")
    best.solve_ms = (time.perf_counter() - t0) * 1e3
    best.proven = True
    return best


def _heuristic_plan(profile, names, replication, max_stages) -> Plan | None:
    from .heuristic import solve as heuristic
    try:
        return heuristic(profile, pes=names, replication=replication, max_stages=max_stages)
    except PlanError:
        return None


def _solve_set(profile, names, groups, rest, weights, max_stages, clock, lower: float,
               upper: float, search_first: bool, sets_left: int) -> list[Stage] | None:
    """The best plan over the PE set `names` (priced with its contention factors) whose
    bottleneck is at most `upper`, or None; `lower` is what the small bound already proved.
    `search_first`: look for a better first plan with the beam, spending at most an eighth of
    the time left shared over the `sets_left` sets."""
    saved = clock.proven, clock.upper_bound
    clock.proven, clock.upper_bound = lower, upper
    layers, to_go = _search_space(profile, names, groups, rest, weights, max_stages, clock)
    start, floor = completion.start_load(profile, names)
    root = max(float((to_go.at(0, 0, 0) + weights @ start[:-1]).max()), floor)
    if not np.isfinite(root) or root > upper * (1 + 2 * _TIE) + 1e-12:
        clock.proven, clock.upper_bound = saved
        return None
    clock.proven, clock.upper_bound = max(root, lower), upper
    sweep = _Sweep(layers, weights, to_go, max_stages, clock, start, floor)
    if search_first or not np.isfinite(upper):
        upper = min(upper, _beam_plan(profile, sweep, clock, upper, sets_left))
        clock.upper_bound = upper
    found = _search(sweep, clock, root, upper, sets_left)
    clock.proven, clock.upper_bound = saved
    return found


def _search_space(profile, names, groups, rest, weights, max_stages, clock):
    """The layers a sweep walks and the bound it prunes by.

    The whole state graph with its bound tables (`completion.to_go`, which knows every skipping
    tensor's source) where the graph fits half the free memory and is built within a quarter of
    the time left. Else a `stategraph.Walk`, which makes only the states the sweep's plans
    reach, pruned by the tables of a relaxed graph that tracks the sources of the largest
    skipping tensors only (`relaxation`, built within an eighth), or failing that by
    `Rest`'s bound (`completion.Relaxed`, every skipping tensor free). The whole graph of a
    skip-heavy profile holds every assignment of producing groups to its 6-10 live tensors
    (10^5-10^7 arcs a layer) where a sweep near the optimum reaches a few thousand states a
    layer; but with `Rest`'s bound alone the sweeps keep far more partial plans per state
    (skip-heavy 60 x 4, 8 stages, bounded at 59.3 ms: 113 s, at most 17,000 states a layer),
    so the whole graph's tighter bound is worth its size wherever it can be had. (Walked with
    `Rest`'s bound, the zoo profiles are still proven, 1.1-25x slower: yolov3 over two cores
    0.3 s -> 8.1 s.) The relaxed graph gets an eighth, not more: the sweeps need the time (with
    a quarter, skip-heavy 120 x 4 at 6 stages found its optimum but ran out in the latency
    tie-break, then a second sweep)."""
    limit = _max_arcs(len(names), len(groups), len(weights), max_stages)
    share = None if clock.deadline is None else (clock.deadline - time.perf_counter()) / 4
    budget = None if share is None else time.perf_counter() + share

    def check(i: int, ahead: float = 0.0) -> None:
        if budget is not None and time.perf_counter() + ahead > budget:
            raise stategraph.TooLarge(i, 0)
        clock.check(f"building the state graph at layer {i}", ahead=ahead)

    try:
        graph = stategraph.build(profile, names, groups, check, max_arcs=limit)
    except stategraph.TooLarge:
        pass
    else:
        return (stategraph.Whole(graph),
                completion.to_go(graph, weights, max_stages,
                                 lambda i: clock.check(f"bounding the rest at layer {i}")))
    walk = stategraph.Walk(stategraph.Arcs(profile, names, groups))
    relaxed = relaxation.bound(
        profile, walk, rest, weights, max_stages, min(limit, _RELAXED_ARCS),
        None if share is None else time.perf_counter() + share / 2,
        lambda i: clock.check(f"bounding the rest at layer {i}"))
    if relaxed is not None:
        return walk, relaxed
    return walk, completion.Relaxed.load(walk, rest, weights, max_stages)


def _search(sweep: "_Sweep", clock: "_Clock", lower: float, upper: float,
             sets_left: int = 1) -> list[Stage] | None:
    """The optimal plan with bottleneck <= upper, or None. A sweep bounded by B is exact
    for the plans with bottleneck <= B: the first sweep that finds a plan has found the optimum,
    and each one that finds none proves the optimum lies above its bound. Its cost grows about
    exponentially with B (skip-heavy 100 x 4 s5 at 6 stages: 0.02 s at 2.2% under the known
    plan, 0.15 s at 1.5%, 0.9 s at 1.0%), so the bound climbs from the proven lower bound to
    the known plan. First a ninth of the gap, then a third of what is left while sweeps take
    under 50 ms (after three such, the known plan's bound). Once the last two sweeps give the
    growth rate, the next bound is the known plan's if its sweep should take at most half the
    time left (this PE set's share of it), else the one whose sweep should take a fifth, kept
    within a 27th and half of the gap left.

    A search that runs out keeps what its finished sweeps proved: the climb in thirds of the
    first gap that came before often ran out in its second sweep with only the first's bound.
    Side by side on partition_bench's skip-heavy profiles (10 s, the 2-core VM): at 6 stages
    gaps 3.3 / 4.1 / 0.8% -> 2.8 / 3.5 / 0.6% (80, 100 s3, 100 s5 x 4), 120 x 4 proven in
    4.8-5.0 s instead of 7.6-8.2; at 8 stages 2.6 / 2.6 / 5.1% -> 2.3 / 2.3 / 4.1% (60, 100 s3,
    120 x 4), random 300 x 5 4.9% -> 4.7%; but 40 x 4 at 8 stages takes 3.0-3.3 s, not 1.7-2.3.
    A sweep aimed at a third of the time left overshot the optimum more often (40 x 4: 4.2 s),
    one at an eighth gave larger gaps."""
    lower = max(lower, clock.proven)
    if not np.isfinite(upper) or upper - lower <= _TIE * upper:
        return sweep.run(upper * (1 + 2 * _TIE) + 1e-12)
    seen: list[tuple[float, float]] = []     # (bound, seconds) of the sweeps that found nothing
    target = lower + (upper - lower) / 9
    while True:
        began = time.perf_counter()
        if target >= upper or upper - target <= _TIE * upper:
            return sweep.run(upper * (1 + 2 * _TIE) + 1e-12)
        found = sweep.run(target * (1 + 2 * _TIE) + 1e-12)
        if found is not None:
            return found
        clock.proven = max(clock.proven, target)
        seen.append((target, time.perf_counter() - began))
        gap = upper - clock.proven
        if clock.deadline is None and len(seen) >= 3:
            target = upper          # no time to share out: go for the proof
            continue
        if seen[-1][1] < _INFORMATIVE_S:
            # nothing learnt of the growth yet, and time to spare: after three, the known plan
            target = upper if len(seen) >= 3 else clock.proven + gap / 3
            continue
        if len(seen) < 2 or seen[-1][1] <= seen[-2][1] or seen[-1][0] <= seen[-2][0]:
            target = clock.proven + gap / 9
            continue
        (b0, t0), (b1, t1) = seen[-2:]
        rate = np.log(t1 / max(t0, 1e-3)) / (b1 - b0)
        left = np.inf if clock.deadline is None else \
            max(clock.deadline - time.perf_counter(), 1e-3) / max(1, sets_left)
        if rate * (upper - b1) <= np.log(left / 2 / t1):
            target = upper
        else:
            aim = b1 + np.log(left / 5 / t1) / rate
            target = min(max(aim, clock.proven + gap / 27), clock.proven + gap / 2)


def _beam_plan(profile, sweep, clock, best: float, sets_left: int) -> float:
    """The lowest bottleneck the beam finds at most `best` (inf if none). The beam widens
    four-fold while the next width is expected to fit its share of the time (an eighth of what
    is left, over the sets still to search; a sweep's cost is about linear in the width)."""
    budget = None if clock.deadline is None else \
        (clock.deadline - time.perf_counter()) / (8 * max(1, sets_left))
    spent, width = 0.0, BEAM_WIDTH
    while width <= MAX_BEAM_WIDTH:
        start = time.perf_counter()
        # a beam's frontier is never priced (its bound proves nothing), so it keeps no time back
        beam_clock = _Clock(None if budget is None else start + budget - spent, clock.n, None)
        try:
            stages = _Sweep(sweep.layers, sweep.weights, sweep.to_go, sweep.max_stages,
                            beam_clock, sweep.start, sweep.floor).run(
                best * (1 + 2 * _TIE) + 1e-12, beam=width)
        except OptimumUnproven:
            break
        if stages is not None:
            clock.known.append(stages)
            best = min(best, evaluate(profile, stages, "beam", check=False).bottleneck_ms)
        took = time.perf_counter() - start
        spent += took
        width *= 4
        if budget is not None and spent + 4.5 * took > budget:
            break
    clock.check("searching for a first plan")
    return best


class _Clock:
    """The time limit, and what the search has proven when it runs out."""

    def __init__(self, deadline: float | None, n: int, frontier_s: float | None = _FRONTIER_S):
        self.deadline = deadline
        self.n = n
        # time kept back to price a sweep's frontier at the end; None: never priced
        self.frontier_s = frontier_s
        self.proven = 0.0           # a bound no plan beats, raised as the search learns more
        self.upper_bound = np.inf   # the bottleneck of a known plan
        self.known: list[list[Stage]] = []   # plans met on the way (for a failed proof)

    def check(self, where: str, frontier=None, ahead: float = 0.0) -> None:
        """Stop (raise `OptimumUnproven`) once the deadline has passed, or would have by the
        end of work that takes `ahead` seconds and cannot be interrupted. The bound of a
        sweep's frontier is itself work (it prices every label: 0.3-0.7 s on the widest
        frontiers of the 2-core VM, after a layer's candidates that cannot be split), so a sweep
        stops `frontier_s` early to price it."""
        if self.frontier_s is None:
            frontier = None
        elif frontier is not None:
            ahead += self.frontier_s
        if self.deadline is None or time.perf_counter() + ahead <= self.deadline:
            return
        lb = self.proven if frontier is None else max(self.proven, frontier())
        self.stop(f"the exact search reached its time limit {where} of {self.n}; this profile "
                  f"is too large for the exact planner", lb)

    def priced_by(self) -> float | None:
        """When work that a sweep's frontier is priced after must end."""
        if self.deadline is None:
            return None
        return self.deadline - (self.frontier_s or 0.0)

    def stop(self, why: str, proven: float | None = None) -> None:
        lb = min(self.proven if proven is None else proven, self.upper_bound)
        raise OptimumUnproven(f"{why}; proven: optimum >= {lb:.4f} ms", lb)


class _Sweep:
    """One pass over the layers keeping, per state, the partial plans that may still win."""

    def __init__(self, layers: stategraph.Whole | stategraph.Walk, weights: np.ndarray, to_go,
                 max_stages: int, clock: _Clock, start: np.ndarray, floor: float):
        self.layers = layers    # the arcs layer by layer: a built graph's, or made as it walks
        self.weights = weights
        self.to_go = to_go      # its bound: `at(layer, states, stages)`, per weight vector
        self.max_stages = max_stages
        self.clock = clock
        self.npe = len(layers.names)
        self.start = start      # every plan's starting label: the host's work
        self.floor = floor      # and its floor, where the host is not a PE of this set

    def _bound(self, loads: np.ndarray, states: np.ndarray, stages: np.ndarray, i: int,
               check=None) -> np.ndarray:
        """Per row, the Lagrangian bound on the bottleneck of any completion (>= its max load).
        `check()` runs between chunks (a wide frontier's candidates take over a second)."""
        out = np.empty(len(loads))
        for a in range(0, len(loads), _CHUNK):
            if check is not None and a:
                check()
            part = loads[a:a + _CHUNK]
            rest = self.to_go.at(i, states[a:a + _CHUNK], stages[a:a + _CHUNK])
            lag = (part @ self.weights.T + rest).max(axis=1)
            out[a:a + _CHUNK] = np.maximum(np.maximum(lag, part.max(axis=1)), self.floor)
        return out

    def run(self, bound: float, beam: int | None = None) -> list[Stage] | None:
        """The contract's best plan with bottleneck <= bound (least bottleneck, then latency,
        then stages), or None. With `beam`, keeps only that many partial plans per state and
        no latency: a heuristic for a first plan."""
        layers, npe, clock = self.layers, self.npe, self.clock
        track = beam is None
        # label columns: load per PE, [latency,] stages so far (fewer dominates: more freedom)
        width = npe + (1 if track else 0)
        cols = list(range(npe)) + ([npe] if track else [])
        labels = np.zeros((1, width + 1))
        labels[0, :npe] = self.start[:npe]
        if track:
            labels[0, npe] = self.start[-1]
        where = np.zeros(1, dtype=np.int64)   # state of each label, ascending
        history = []
        rate = 0.0      # seconds per candidate that making a layer's candidates took at most
        step_rate = 0.0     # and per reached state that a walk's step took (a built graph's: 0)
        layers.start()
        for i in range(layers.n):
            frontier = (lambda L=labels, s=where, i=i:
                        float(self._bound(L[:, :npe], s, L[:, -1].astype(np.int64), i).min())
                        if len(L) else np.inf)
            count = np.bincount(where, minlength=layers.rows(i))
            reached = np.flatnonzero(count)
            # a walk's step (its arcs, numbering the states after) cannot stop half-way either
            clock.check(f"at layer {i}", frontier, ahead=step_rate * len(reached))
            began = time.perf_counter()
            step = layers.step(i, reached)
            if len(reached) >= 1000:
                step_rate = max(step_rate, (time.perf_counter() - began) / len(reached))
            first = np.cumsum(count) - count
            per_arc = count[step.src]
            total = int(per_arc.sum())
            # making the layer's candidates cannot stop half-way: start it only if it should
            # end before the deadline at the slowest rate per candidate seen so far
            clock.check(f"at layer {i}", frontier, ahead=rate * total)
            if total == 0:
                return None
            began = time.perf_counter()
            arc = np.repeat(np.arange(len(step.src)), per_arc)
            row = first[step.src][arc] + np.arange(total) - np.repeat(np.cumsum(per_arc) - per_arc,
                                                                       per_arc)
            cand = labels[row]
            cand[:, :width] += step.inc[arc][:, cols]
            cand[:, -1] += step.opens[arc]
            dst = step.dst[arc]
            fits = cand[:, -1] <= self.max_stages
            cand, dst, row, arc = cand[fits], dst[fits], row[fits], arc[fits]
            used = cand[:, -1].astype(np.int64)
            if total >= 10_000:
                rate = max(rate, (time.perf_counter() - began) / total)
            score = self._bound(cand[:, :npe], dst, used, i + 1,
                                lambda: clock.check(f"at layer {i}", frontier))
            keep = score <= bound
            cand, dst, row, arc, score = cand[keep], dst[keep], row[keep], arc[keep], score[keep]
            if not len(cand):
                return None
            if beam is not None:
                # the best few per state and stage count, in state order
                slot = dst * (self.max_stages + 1) + cand[:, -1].astype(np.int64)
                order = np.lexsort((score, slot))
                starts = np.flatnonzero(np.r_[True, slot[order][1:] != slot[order][:-1]])
                rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
                sel = order[rank < beam]
            else:
                sel = self._pareto(cand, dst, arc, f"at layer {i}", frontier)
            labels, where = cand[sel], dst[sel]
            history.append((row[sel], step.group[arc[sel]]))
        return self._best(labels, where, history, track)

    def _pareto(self, cand, dst, arc, where_msg, frontier) -> np.ndarray:
        """Rows that no other row of the same state dominates, in state order."""
        order = np.argsort(dst, kind="stable")
        d = dst[order]
        starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        ends = np.r_[starts[1:], len(d)]
        kept = []
        for k, (a, b) in enumerate(zip(starts, ends)):
            idx = order[a:b]
            if b - a == 1 or (arc[idx] == arc[idx[0]]).all():
                # one arc: a shifted copy of one state's frontier, already minimal
                kept.append(idx)
                continue
            if k % 32 == 31:
                self.clock.check(where_msg, frontier)
            try:
                kept.append(idx[pareto.minimal(cand[idx], self.clock.priced_by())])
            except pareto.TimeUp:
                self.clock.check(where_msg, frontier)
                raise
        return np.concatenate(kept)

    def _best(self, labels, where, history, with_latency) -> list[Stage] | None:
        """The contract's best of the finished labels: the least bottleneck, then among those
        within its tie (relative 1e-9 of the least, as `cost.better`) the least latency, then
        among those within its tie the fewest stages. Ties are taken against the least value,
        not plan by plan: a chain of near-ties, each within 1e-9 of the next, must not walk the
        choice up, and a sweep that tracks latency up to its bound holds long chains."""
        if not len(labels):
            return None
        npe = self.npe
        tops = np.maximum(labels[:, :npe].max(axis=1), self.floor)
        near = np.flatnonzero(tops - tops.min() <= _TIE * np.abs(tops))
        if with_latency:
            lat = labels[near, npe]
            near = near[lat - lat.min() <= _TIE * np.abs(lat)]
        at = int(near[np.argmin(labels[near, -1])])
        path = []
        for rows, groups in reversed(history):
            path.append(int(groups[at]))
            at = int(rows[at])
        path.reverse()
        return stages_from_path(self.layers.groups, path)

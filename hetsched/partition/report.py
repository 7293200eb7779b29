"""Plans in words: a stage table with per-PE load, and methods side by side."""

from __future__ import annotations

from ..profile import Profile
from .cost import Plan, dla_subgraphs, subgraph_limit


def format_plan(profile: Profile, plan: Plan, pes: list[str] | None = None) -> str:
    """The stage table (one row per member of a replicated stage: members read from different
    producers), then the per-PE load table over `pes` (the PEs the planner was allowed; default
    every PE of the profile) and any PE that carries load outside them (the host's work).
    Columns for the version-2 terms (contention factor, stage overhead, host work) appear only
    where a term is non-zero."""
    layers = profile.layers
    costs = plan.stage_costs
    slowed = any(c.factor.get(p, 1.0) != 1.0 for c in costs for p in c.pes)
    overhead = any(c.overhead_ms.get(p, 0.0) for c in costs for p in c.pes)
    head = f"{'#':>2}  {'PEs':<14}{'layers':<34}{'compute':>10}{'transfer':>10}"
    head += f"{'x factor':>10}" if slowed else ""
    head += f"{'overhead':>10}" if overhead else ""
    rows = [head + f"{'time':>10}"]
    for j, (s, c) in enumerate(zip(plan.stages, costs)):
        span = f"{s.first} {layers[s.first].name} .. {s.last} {layers[s.last].name}"
        if len(span) > 33:
            span = f"{s.first}..{s.last} ({s.last - s.first + 1} layers)"
        for r, p in enumerate(s.pes):
            label = (f"{j:>2}  {'+'.join(s.pes):<14}{span:<34}" if r == 0 else
                     f"{'':>2}    {p:<12}{'':<34}")
            row = label + f"{c.compute_ms[p]:>10.3f}{c.in_ms[p] + c.out_ms[p]:>10.3f}"
            row += f"{c.factor.get(p, 1.0):>10.3f}" if slowed else ""
            row += f"{c.overhead_ms.get(p, 0.0):>10.3f}" if overhead else ""
            rows.append(row + f"{c.time_ms(p):>10.3f}")
    if any(len(s.pes) > 1 for s in plan.stages):
        rows.append("(a replicated stage: its first member's row, then one row per other member)")
    rows.append("")
    used = {p for s in plan.stages for p in s.pes}
    host_ms = profile.host_ms
    head = f"{'PE':<8}{'stages ms':>10}" + (f"{'host work':>10}" if host_ms else "") \
        + f"{'load ms':>10}" + (f"{'factor':>8}{'slowdown':>10}" if slowed else "") \
        + (f"{'overhead':>10}" if overhead else "")
    rows.append(head)
    for pe in profile.pes:
        load = plan.pe_load_ms.get(pe, 0.0)
        if pes is not None and pe not in pes and pe not in used and not load:
            continue
        own = host_ms if pe == profile.host else 0.0
        row = f"{pe:<8}{load - own:>10.3f}" + (f"{own:>10.3f}" if host_ms else "") + f"{load:>10.3f}"
        # where the version-2 terms bite: the share of the load contention and overheads add
        mine = [(c, len(c.pes)) for c in costs if pe in c.pes]
        if slowed:
            extra = sum(c.work_ms(pe) * (c.factor.get(pe, 1.0) - 1.0) / k for c, k in mine)
            row += (f"{profile.factor(pe, used):>8.3f}{_share(extra, load):>10}" if pe in used
                    else f"{'-':>8}{'-':>10}")
        if overhead:
            row += f"{_share(sum(c.overhead_ms.get(pe, 0.0) / k for c, k in mine), load):>10}" \
                if pe in used else f"{'-':>10}"
        rows.append(row + ("  <- bottleneck" if abs(load - plan.bottleneck_ms) <= 1e-12 else ""))
    if slowed or overhead:
        parts = [(n, w) for n, w, on in (("slowdown", "contention", slowed),
                                         ("overhead", "the per-stage overhead", overhead)) if on]
        rows.append(f"({', '.join(n for n, _ in parts)}: the share of each PE's load that "
                    f"{' and '.join(w for _, w in parts)} add{'' if len(parts) > 1 else 's'})")
    limit = subgraph_limit(profile)
    counts = dla_subgraphs(profile, plan.stages, plan.dla_fallback)
    if limit and plan.dla_fallback and counts:
        rows.append("DLA subgraphs per stage engine: " + "; ".join(
            f"{p} {', '.join(map(str, k))}" for p, k in counts.items())
            + f" (TensorRT builds at most {limit} per engine; planners refuse more)")
    solve = f", solved in {plan.solve_ms:.1f} ms" if plan.solve_ms is not None else ""
    rows.append(f"{plan.method}: bottleneck {plan.bottleneck_ms:.3f} ms -> {plan.throughput_fps:.2f} fps "
                f"predicted, latency {plan.latency_ms:.3f} ms{solve}")
    if plan.proven is False:
        rows.append(f"not proven optimal: within {100 * plan.gap:.1f}% of the optimum (the search "
                    f"proved optimum >= {plan.lower_bound_ms:.3f} ms before its time limit; this is "
                    f"the best plan it knew)")
    return "\n".join(rows)


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole > 0 else "-"


def format_comparison(attempts) -> str:
    """Methods side by side (a `partition.Attempts`); a method that failed shows its error.
    Without a proven optimum, a proven lower bound on it gives each method's worst-case ratio
    to the optimum (shown as >= ratio)."""
    ref = attempts.optimum
    bound = attempts.lower_bound_ms
    rows = [f"{'method':<11}{'stages':>7}{'bottleneck ms':>15}{'fps':>10}{'latency ms':>12}"
            f"{'vs optimal':>12}{'solve ms':>10}"]
    for name in [*attempts.plans, *attempts.errors]:
        if name in attempts.errors:
            rows.append(f"{name:<11}  failed: {attempts.errors[name]}")
            continue
        plan = attempts.plans[name]
        ratio = (f"{ref.bottleneck_ms / plan.bottleneck_ms:.4f}" if ref else
                 f">={bound / plan.bottleneck_ms:.4f}" if bound else "-")
        rows.append(f"{name:<11}{len(plan.stages):>7}{plan.bottleneck_ms:>15.3f}"
                    f"{plan.throughput_fps:>10.2f}{plan.latency_ms:>12.3f}{ratio:>12}"
                    f"{plan.solve_ms or 0.0:>10.1f}")
    if ref is None and bound:
        rows.append(f"(no proven optimum; proven: optimum >= {bound:.3f} ms, so 'vs optimal' "
                    f"is a worst case)")
    elif ref is None:
        rows.append("(no proven optimum: 'vs optimal' is blank)")
    for name in sorted(attempts.outside):
        rows.append(f"({name}: a stage replicates over PEs of different kinds, which a plan may not "
                    f"(contract section 2); shown for comparison, never chosen)")
    return "\n".join(rows)

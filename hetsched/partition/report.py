"""Plans in words: a stage table with per-PE load, and methods side by side."""

from __future__ import annotations

from ..profile import Profile
from .cost import Plan


def format_plan(profile: Profile, plan: Plan) -> str:
    layers = profile.layers
    rows = [f"{'#':>2}  {'PEs':<14}{'layers':<34}{'compute':>10}{'transfer':>10}{'time':>10}"]
    for j, (s, c) in enumerate(zip(plan.stages, plan.stage_costs)):
        p = s.pes[0]
        span = f"{s.first} {layers[s.first].name} .. {s.last} {layers[s.last].name}"
        if len(span) > 33:
            span = f"{s.first}..{s.last} ({s.last - s.first + 1} layers)"
        rows.append(f"{j:>2}  {'+'.join(s.pes):<14}{span:<34}{c.compute_ms[p]:>10.3f}"
                    f"{c.in_ms[p] + c.out_ms[p]:>10.3f}{c.time_ms(p):>10.3f}")
    rows.append("")
    rows.append("load    " + "  ".join(f"{pe} {plan.pe_load_ms.get(pe, 0.0):.3f}" for pe in profile.pes)
                + " ms")
    solve = f", solved in {plan.solve_ms:.1f} ms" if plan.solve_ms is not None else ""
    rows.append(f"{plan.method}: bottleneck {plan.bottleneck_ms:.3f} ms -> {plan.throughput_fps:.2f} fps "
                f"predicted, latency {plan.latency_ms:.3f} ms{solve}")
    return "\n".join(rows)


def format_comparison(plans: dict[str, Plan | str], lower_bound_ms: float | None = None) -> str:
    """Methods side by side; a method that failed carries its error message instead of a plan.
    Without a proven optimum, a proven `lower_bound_ms` on it gives each method's worst-case
    ratio to the optimum (shown as >= ratio)."""
    ref = plans.get("optimal")
    ref = ref if isinstance(ref, Plan) else None
    rows = [f"{'method':<11}{'stages':>7}{'bottleneck ms':>15}{'fps':>10}{'latency ms':>12}"
            f"{'vs optimal':>12}{'solve ms':>10}"]
    for name, plan in plans.items():
        if not isinstance(plan, Plan):
            rows.append(f"{name:<11}  failed: {plan}")
            continue
        ratio = (f"{ref.bottleneck_ms / plan.bottleneck_ms:.4f}" if ref else
                 f">={lower_bound_ms / plan.bottleneck_ms:.4f}" if lower_bound_ms else "-")
        rows.append(f"{name:<11}{len(plan.stages):>7}{plan.bottleneck_ms:>15.3f}"
                    f"{plan.throughput_fps:>10.2f}{plan.latency_ms:>12.3f}{ratio:>12}"
                    f"{plan.solve_ms or 0.0:>10.1f}")
    if ref is None and lower_bound_ms:
        rows.append(f"(no proven optimum; proven: optimum >= {lower_bound_ms:.3f} ms, so 'vs optimal' "
                    f"is a worst case)")
    elif ref is None:
        rows.append("(no proven optimum: 'vs optimal' is blank)")
    return "\n".join(rows)

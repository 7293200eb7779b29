"""PNG charts people would rather look at than read: per-layer costs, per-PE load, stage timeline.
matplotlib is optional (`pip install 'hetsched[plot]'`) and imported only here, lazily."""

from __future__ import annotations

from .atomic import atomic_path
from .errors import HetschedError


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise HetschedError("plotting needs matplotlib: pip install 'hetsched[plot]'") from None
    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)


def layer_costs(profile, path) -> None:
    """Per-layer cost bars, one colour per PE."""
    import numpy as np
    plt = _pyplot()
    n = len(profile.layers)
    pes = list(profile.pes)
    width = 0.8 / len(pes)
    fig, ax = plt.subplots(figsize=(max(8, min(40, n * 0.12 * len(pes))), 4.5))
    x = np.arange(n)
    for k, pe in enumerate(pes):
        ax.bar(x + k * width, [l.cost_ms.get(pe) or 0.0 for l in profile.layers], width, label=pe)
    ax.set_xlabel("layer index")
    ax.set_ylabel("cost (ms)")
    ax.set_title(f"{profile.model.name}: per-layer cost ({profile.source}, "
                 f"{profile.board.get('name', '?')})")
    ax.legend()
    ax.margins(x=0.01)
    fig.tight_layout()
    _save(fig, path)


def plan(profile, plan_, path) -> None:
    """Per-PE load bars beside the stage timeline of one frame through an empty pipeline."""
    plt = _pyplot()
    pes = list(profile.pes)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.6 * len(pes) + 3),
                                      gridspec_kw={"width_ratios": [1, 2]})
    loads = [plan_.pe_load_ms.get(p, 0.0) for p in pes]
    left.barh(pes, loads, color=["tab:red" if abs(v - plan_.bottleneck_ms) < 1e-12 else "tab:blue"
                                 for v in loads])
    left.axvline(plan_.bottleneck_ms, color="tab:red", linestyle="--", linewidth=1)
    left.set_xlabel("load per frame (ms)")
    left.set_title(f"per-PE load: bottleneck {plan_.bottleneck_ms:.2f} ms "
                   f"({plan_.throughput_fps:.1f} fps)")
    left.invert_yaxis()
    row = {pe: k for k, pe in enumerate(pes)}  # numeric rows: categorical ones follow draw order
    # frame 0 through an empty pipeline, as the contract's latency: the host's work first
    start = profile.host_ms
    if start:
        right.barh(row[profile.host], start, left=0.0, color="lightgrey", edgecolor="black")
        right.text(start / 2, row[profile.host], "host", ha="center", va="center", fontsize=8)
    for j, (stage, cost) in enumerate(zip(plan_.stages, plan_.stage_costs)):
        for pe in stage.pes:
            right.barh(row[pe], cost.time_ms(pe), left=start, color=f"C{j % 10}", edgecolor="black")
            right.text(start + cost.time_ms(pe) / 2, row[pe], str(j), ha="center", va="center",
                       fontsize=8)
        start += cost.first_ms()
    right.set_yticks(range(len(pes)))
    right.set_yticklabels(pes)
    right.set_ylim(len(pes) - 0.5, -0.5)
    right.set_xlabel("time since the frame entered (ms)")
    right.set_title(f"{plan_.method}: {len(plan_.stages)} stage(s), latency {plan_.latency_ms:.2f} ms")
    fig.suptitle(profile.model.name)
    fig.tight_layout()
    _save(fig, path)


def timeline(events, path, title: str) -> None:
    """A Gantt chart: one row per PE, one bar per (stage, frame) run, coloured by stage and
    labelled with the frame's sequence number. `events` are (stage, pe, seq, start_s, end_s)."""
    plt = _pyplot()
    if not events:
        raise HetschedError("no engine runs were recorded: nothing to draw")
    pes = list(dict.fromkeys(e[1] for e in sorted(events, key=lambda e: (e[0], e[1]))))
    row = {pe: k for k, pe in enumerate(pes)}
    fig, ax = plt.subplots(figsize=(14, 0.6 * len(pes) + 2))
    t_end = max(e[4] for e in events) * 1e3
    for stage, pe, seq, t0, t1 in events:
        ax.barh(row[pe], (t1 - t0) * 1e3, left=t0 * 1e3, color=f"C{stage % 10}", edgecolor="black",
                linewidth=0.3)
        if (t1 - t0) * 1e3 > t_end / 150:
            ax.text((t0 + t1) / 2 * 1e3, row[pe], str(seq), ha="center", va="center", fontsize=6)
    ax.set_yticks(range(len(pes)))
    ax.set_yticklabels(pes)
    ax.set_ylim(len(pes) - 0.5, -0.5)
    ax.set_xlabel("time since the first frame (ms); colour = stage, number = frame")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)

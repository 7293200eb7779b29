"""Charts people would rather look at than read: per-layer costs, per-PE load, stage timeline;
PNG, or SVG or PDF where the file's name says so. matplotlib is optional (`pip install
'hetsched[plot]'`) and imported only here, lazily."""

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


FORMATS = ("png", "svg", "pdf")


def chart_format(path) -> str:
    """The format a chart file's suffix names (a missing suffix: PNG), or a one-line error."""
    from pathlib import Path
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    if fmt not in FORMATS:
        raise HetschedError(f"{path}: a chart is written as {', '.join(FORMATS)} by the file's "
                            f"suffix; '.{fmt}' is none of them")
    return fmt


def _save(fig, path) -> None:
    try:
        fmt = chart_format(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=110)
    finally:
        _pyplot().close(fig)


def layer_costs(profile, path) -> None:
    """Per-layer cost bars, one row per layer (index and name) and one colour per PE, on a log
    scale so that a DLA's or GPU's bars stay visible beside a CPU's; the figure grows in height
    with the layer count (about 9 px per PE bar), never in width."""
    import numpy as np
    plt = _pyplot()
    n = len(profile.layers)
    pes = list(profile.pes)
    height = 0.8 / len(pes)
    fig, ax = plt.subplots(figsize=(11, max(4.0, n * (0.05 + 0.035 * len(pes)) + 1.5)))
    y = np.arange(n)
    costs = np.array([[l.cost_ms.get(pe) or 0.0 for pe in pes] for l in profile.layers])
    for k, pe in enumerate(pes):
        ok = costs[:, k] > 0      # zero: the PE cannot run the layer (nothing to draw on a log axis)
        ax.barh(y[ok] + (k - (len(pes) - 1) / 2) * height, costs[ok, k], height, label=pe)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{i} {l.name[:32]}" for i, l in enumerate(profile.layers)],
                       fontsize=6 if n > 60 else 8)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlabel("cost per frame (ms, log scale)")
    ax.set_title(f"{profile.model.name}: per-layer cost ({profile.source}, "
                 f"{profile.board.get('name', '?')})")
    ax.grid(axis="x", which="both", linewidth=0.3, alpha=0.5)
    ax.legend(loc="upper right", fontsize=8)
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


# frames labelled in a timeline's close-up; beyond this a whole run's bars are too thin to read
ZOOM_FRAMES = 24


def timeline(events, path, title: str) -> None:
    """A Gantt chart: one row per PE, one bar per (stage, frame) run, coloured by stage. Up to
    ZOOM_FRAMES frames it is one panel with every run labelled by its frame's sequence number;
    for longer runs the whole run is drawn above (unlabelled: its shape shows stalls and
    imbalance) and a close-up of ZOOM_FRAMES frames from the middle of the run below, labelled.
    `events` are (stage, pe, seq, start_s, end_s)."""
    plt = _pyplot()
    if not events:
        raise HetschedError("no engine runs were recorded: nothing to draw")
    pes = list(dict.fromkeys(e[1] for e in sorted(events, key=lambda e: (e[0], e[1]))))
    row = {pe: k for k, pe in enumerate(pes)}
    seqs = sorted({e[2] for e in events})
    zoom = len(seqs) > ZOOM_FRAMES
    rows_h = 0.45 * len(pes) + 1.2
    fig, axes = plt.subplots(2 if zoom else 1, 1, figsize=(14, rows_h * (2 if zoom else 1) + 0.6),
                             squeeze=False)
    if zoom:
        mid = len(seqs) // 2 - ZOOM_FRAMES // 2
        window = set(seqs[mid:mid + ZOOM_FRAMES])
        _gantt(axes[0][0], events, row, labels=False)
        axes[0][0].set_title(f"{title}: all {len(seqs)} frames")
        _gantt(axes[1][0], [e for e in events if e[2] in window], row, labels=True)
        axes[1][0].set_title(f"close-up: frames {min(window)}-{max(window)}")
    else:
        _gantt(axes[0][0], events, row, labels=True)
        axes[0][0].set_title(title)
    axes[-1][0].set_xlabel("time since the first frame (ms); colour = stage, number = frame")
    fig.tight_layout()
    _save(fig, path)


def _gantt(ax, events, row, labels: bool) -> None:
    """One `broken_barh` per (PE, stage): thousands of runs draw in well under a second."""
    by: dict = {}
    for stage, pe, seq, t0, t1 in events:
        by.setdefault((pe, stage), []).append((t0 * 1e3, (t1 - t0) * 1e3))
    for (pe, stage), spans in by.items():
        ax.broken_barh(spans, (row[pe] - 0.4, 0.8), facecolors=f"C{stage % 10}",
                       edgecolors="black" if labels else "none", linewidth=0.3)
    if labels:
        lo = min(e[3] for e in events)
        span = max(e[4] for e in events) - lo
        for stage, pe, seq, t0, t1 in events:
            if t1 - t0 > span / 120:
                ax.text((t0 + t1) / 2 * 1e3, row[pe], str(seq), ha="center", va="center",
                        fontsize=6)
    ax.set_yticks(range(len(row)))
    ax.set_yticklabels(list(row))
    ax.set_ylim(len(row) - 0.5, -0.5)
    ax.autoscale(axis="x")

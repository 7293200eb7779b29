"""A profile in words: what was measured, where, and the costliest layers."""

from __future__ import annotations

from .profile import Profile


def _fmt_ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def summary_dict(p: Profile, top: int = 5) -> dict:
    totals = {pe: sum(l.cost_ms.get(pe) or 0.0 for l in p.layers) for pe in p.pes}
    runnable = {pe: sum(1 for l in p.layers if l.cost_ms.get(pe) is not None) for pe in p.pes}
    ref = max(p.pes, key=lambda pe: totals[pe])
    ranked = sorted(range(len(p.layers)), key=lambda i: -(p.layers[i].cost_ms.get(ref) or 0.0))
    return {
        "model": p.model.name, "sha256": p.model.sha256, "inputs": p.model.inputs,
        "source": p.source, "board": p.board.get("name"), "host": p.host,
        "layers": len(p.layers),
        "gmacs": sum(l.extra.get("macs", 0) for l in p.layers) / 1e9,
        "pes": {pe: {"kind": p.pes[pe].kind, "sum_layers_ms": totals[pe],
                     "runnable_layers": runnable[pe],
                     "whole_model_ms": p.board.get("whole_model_ms", {}).get(pe),
                     "optimized_model_ms": p.board.get("optimized_model_ms", {}).get(pe)}
                for pe in p.pes},
        "transfer": {k: {"latency_ms": v.latency_ms, "ms_per_mb": v.ms_per_mb}
                     for k, v in p.transfer.items()},
        "top_layers": [{"index": i, "name": p.layers[i].name, "op": p.layers[i].op,
                        "cost_ms": p.layers[i].cost_ms} for i in ranked[:top]],
    }


def format_summary(p: Profile, top: int = 5) -> str:
    s = summary_dict(p, top)
    sha = f"sha256 {s['sha256'][:12]}…" if s["sha256"] else "no sha256"
    inputs = ", ".join(f"{k}={v}" for k, v in s["inputs"].items())
    out = [f"model   {s['model']} ({sha}), inputs {inputs}",
           f"source  {s['source']} on {s['board']}, host {s['host']}",
           f"layers  {s['layers']}, {s['gmacs']:.2f} GMAC",
           "",
           f"{'PE':<8}{'kind':<6}{'layers':>8}{'sum of layers':>15}{'whole model':>13}"
           f"{'sum/whole':>11}{'optimised':>11}"]
    for pe, d in s["pes"].items():
        whole = d["whole_model_ms"]
        ratio = f"{d['sum_layers_ms'] / whole:.3f}" if whole else "-"
        out.append(f"{pe:<8}{d['kind']:<6}{d['runnable_layers']:>8}{d['sum_layers_ms']:>12.2f} ms"
                   f"{_fmt_ms(whole):>10} ms{ratio:>11}{_fmt_ms(d['optimized_model_ms']):>8} ms")
    out.append("")
    out.append("transfer " + "; ".join(f"{k}: {v['latency_ms']:.4f} ms + {v['ms_per_mb']:.4f} ms/MB"
                                       for k, v in s["transfer"].items()))
    out.append("")
    out.append(f"costliest layers ({len(s['top_layers'])}):")
    for t in s["top_layers"]:
        costs = "  ".join(f"{pe} {_fmt_ms(t['cost_ms'].get(pe))}" for pe in s["pes"])
        out.append(f"  [{t['index']:>3}] {t['name']:<24} {t['op']:<12} {costs} ms")
    return "\n".join(out)

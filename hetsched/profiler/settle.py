"""What a real board would settle: for each figure a board file marks `assumed`, the measurement
on that board that replaces it (the command to run there and what to read in its output), so the
first user with a Jetson can calibrate in one sitting. `scripts/jetson_profile.py --settle BOARD`
prints them; `--write-probes DIR` writes the probe models the commands name.

A measurement is keyed by a glob over the figure's path in the board file (`stage_overhead_ms.gpu`,
`pes.*.peak_gflops.*`); `assumed_figures` walks a board file and `measurement_for` finds the
entry. A test checks that every assumed figure of every Jetson board has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

TRTEXEC = "/usr/src/tensorrt/bin/trtexec"


@dataclass(frozen=True)
class Measurement:
    pattern: str      # glob over figure paths
    command: str      # what to run on the board ({board} and {model} are left for the user)
    read: str         # what in the output gives the figure, and how


MEASUREMENTS = [
    Measurement("stage_overhead_ms.gpu",
                f"{TRTEXEC} --onnx=probes/conv1x1_c16_8x8.onnx --fp16 --iterations=2000 --useSpinWait",
                "'Latency: ... mean = X ms': the probe's one layer is nearly free, so X is one "
                "engine's enqueue + synchronisation per frame"),
    Measurement("stage_overhead_ms.dla",
                f"{TRTEXEC} --onnx=probes/conv1x1_c16_8x8.onnx --fp16 --useDLACore=0 --iterations=2000",
                "'Latency: ... mean = X ms' minus the input reformat row of --dumpProfile: one DLA "
                "task's submission and completion"),
    Measurement("stage_overhead_ms.cpu",
                "hetsched profile {model} --pe cpu0,cpu1 -o cpu.json",
                "cpu.json: stage_overhead_ms.cpu0 (the runtime's hop + session launch, measured by "
                "hetsched.profiler.runtime_terms on the board's own cores)"),
    Measurement("transfer.gpu->dla*.*",
                f"for s in 52 104 208; do {TRTEXEC} --onnx=probes/conv3x3_c64_${{s}}x${{s}}.onnx --fp16 "
                "--useDLACore=0 --dumpProfile --separateProfileRun --profilingVerbosity=detailed; done",
                "the 'Reformatting CopyNode for Input Tensor 0 to {ForeignNode...}' row at the three "
                "sizes (0.35, 1.4, 5.5 MB in FP16): the intercept of time over MB is latency_ms, "
                "the slope ms_per_mb"),
    Measurement("contention.gpu.dla",
                f"{TRTEXEC} --loadEngine=gpu.plan --duration=30 (alone), then again while "
                f"'{TRTEXEC} --loadEngine=dla0.plan --useDLACore=0 --duration=45' and the same on "
                "--useDLACore=1 run (engines of {model} built with --saveEngine)",
                "'GPU Compute Time: ... mean' beside both DLAs / alone - 1, divided by 2 (one "
                "coefficient per DLA)"),
    Measurement("contention.dla.*",
                f"{TRTEXEC} --loadEngine=dla0.plan --useDLACore=0 --duration=30 alone, beside the "
                "GPU engine only, and beside the DLA1 engine only",
                "'Latency: ... mean' beside the GPU / alone - 1 is contention.dla.gpu; beside DLA1 / "
                "alone - 1 is contention.dla.dla"),
    Measurement("dla.atomic_c",
                f"for c in 64 65 128; do {TRTEXEC} --onnx=probes/conv1x1_c${{c}}_k64_52x52.onnx --fp16 "
                "--useDLACore=0 --iterations=500; done",
                "'GPU Compute Time: ... mean': 65 input channels costing about what 128 cost (and "
                "twice 64) means channels are issued in blocks of 64 (Atomic-C = 64)"),
    Measurement("dla.atomic_k.*",
                f"for k in 16 17 32; do {TRTEXEC} --onnx=probes/conv1x1_c64_k${{k}}_52x52.onnx --fp16 "
                "--useDLACore=0 --iterations=500; done (and --int8 for the INT8 figure)",
                "17 output channels costing about what 32 cost means Atomic-K = 16 at FP16 "
                "(at INT8 the step is 32 if the assumed figure is right)"),
    Measurement("dla.winograd_speedup",
                f"{TRTEXEC} --onnx=probes/conv3x3_c64_104x104.onnx and probes/conv3x3s2_c64_208x208.onnx "
                "--fp16 --useDLACore=0 --iterations=500",
                "both probes have the same MACs; the stride-2 one cannot use Winograd, so its time "
                "over the stride-1 one's is the Winograd speedup (2.25 if TensorRT uses it)"),
    Measurement("dla.image_input_utilisation",
                f"{TRTEXEC} --onnx=probes/conv3x3_c3_416x416.onnx --fp16 --useDLACore=0 --iterations=500",
                "the probe's MACs / (time x the DLA's MAC rate) is the first layer's utilisation"),
    Measurement("efficiency.dla.*",
                "python3 scripts/jetson_profile.py {model} --pes gpu,dla0 -o board.json; "
                "python3 scripts/calibrate_xavier.py --dry-run",
                "a DLA layer's modeled time over its measured time in board.json, times the "
                "assumed efficiency (Conv: after the MAC model of the dla section; other: pooling "
                "and element-wise layers)"),
    Measurement("efficiency.gpu.*",
                "python3 scripts/jetson_profile.py {model} --pes gpu -o board.json",
                "per op: sum of modeled GPU time over sum of measured, times the assumed efficiency"),
    Measurement("efficiency.cpu.*",
                "hetsched profile {model} --pe cpu0-7 -o cpu.json",
                "per op: sum of modeled CPU time over sum of measured in cpu.json, times the "
                "assumed efficiency"),
    Measurement("pes.*.overhead_ms",
                "python3 scripts/jetson_profile.py probes/relu_chain_64.onnx --pes gpu,dla0 --cpu cpu0 -o chain.json",
                "the per-layer cost of the probe's 64 tiny layers in chain.json: what a layer "
                "costs with no work in it"),
    Measurement("pes.gpu.peak_gflops.*",
                "sudo jetson_clocks --show",
                "the GPU's MaxFreq line: peak = CUDA cores x 2 x MaxFreq (fp32); the tensor-core "
                "rates scale with the same clock"),
    Measurement("pes.dla*.peak_gflops.*",
                "sudo cat /sys/kernel/debug/bpmp/debug/clk/dla0_core/rate (path as on JetPack 4/5; "
                "`ls /sys/kernel/debug/bpmp/debug/clk | grep -i dla` if it differs)",
                "the DLA clock in Hz: peak = MACs per cycle x 2 x clock, with the MACs per cycle the "
                "figure's source assumes (Xavier's NVDLA v1: 1024 FP16 / 2048 INT8, so 1395200000 Hz "
                "at MAXN if its assumed clock is right; for other boards the source says)"),
    Measurement("pes.cpu.peak_gflops.*",
                "sudo jetson_clocks --show; hetsched profile probes/conv3x3_c64_104x104.onnx --pe cpu0 -o c.json",
                "the CPU MaxFreq line for the clock; the probe's FLOPs over its time in c.json for "
                "the FLOP per cycle actually reached"),
    Measurement("memory.bandwidth_efficiency",
                f"{TRTEXEC} --onnx=probes/add_c64_416x416.onnx --fp16 --iterations=500",
                "the probe reads and writes one 22.2 MB FP16 tensor: (44.3 MB / 'GPU Compute Time' "
                "mean) / the board's bandwidth_gbps"),
    Measurement("transfer.default.*",
                f"{TRTEXEC} --onnx=probes/conv3x3_c64_104x104.onnx --fp16 --iterations=500 (without "
                "--noDataTransfers) at two input sizes",
                "'H2D Latency' and 'D2H Latency' means over the tensor's MB: the intercept is "
                "latency_ms, the slope ms_per_mb"),
    Measurement("dla.max_subgraphs_per_core",
                f"{TRTEXEC} --onnx=probes/islands_9.onnx --fp16 --useDLACore=0 --allowGPUFallback --verbose; "
                "then two engines of probes/islands_5.onnx on --useDLACore=0 at once",
                "the warning 'DLA supports only N subgraphs per DLA core' gives N (9 islands ask for 9); "
                "if two 5-island engines both build and run on one core, the limit is per engine"),
    Measurement("dla_unsupported_ops",
                f"for op in probes/op_*.onnx; do {TRTEXEC} --onnx=$op --fp16 --useDLACore=0; done "
                "(no --allowGPUFallback)",
                "a probe whose engine fails to build names an op the DLA cannot run; one that "
                "builds names an op to remove from dla_unsupported_ops"),
]


def figure_paths(node, path: str = ""):
    """(path, figure) for every `{value, ...}` figure of a board file's JSON."""
    if isinstance(node, dict):
        if "value" in node:
            yield path, node
            return
        for key, sub in node.items():
            yield from figure_paths(sub, f"{path}.{key}" if path else key)


def assumed_figures(raw: dict) -> list[tuple[str, object]]:
    """(path, value) of every figure a board file marks assumed, plus its assumed DLA ops."""
    out = [(p, f["value"]) for p, f in figure_paths(raw) if f.get("assumed")]
    ops = raw.get("dla_unsupported_ops", {}).get("assumed_ops")
    if ops:
        out.append(("dla_unsupported_ops", ", ".join(ops)))
    return out


def measurement_for(path: str) -> Measurement | None:
    return next((m for m in MEASUREMENTS if fnmatchcase(path, m.pattern)), None)


def settle_report(raw: dict, model: str = "yolov2-relu-416.onnx") -> str:
    """One block per assumed figure: its path and value, the command, what to read."""
    rows = [f"# {raw.get('name')}: {len(assumed_figures(raw))} assumed figures and the board "
            f"measurement that would replace each (write the probes first: "
            f"python3 scripts/jetson_profile.py --write-probes probes)", ""]
    for path, value in assumed_figures(raw):
        m = measurement_for(path)
        rows.append(f"{path} = {value}")
        if m is None:
            rows.append("  no measurement known: settle by hand")
        else:
            rows.append(f"  run:  {m.command.replace('{model}', model)}")
            rows.append(f"  read: {m.read}")
        rows.append("")
    return "\n".join(rows)


# name -> (op, input channels, output channels, height = width, kernel, stride, repeat)
PROBES = {
    "conv1x1_c16_8x8": ("Conv", 16, 16, 8, 1, 1, 1),
    **{f"conv1x1_c{c}_k64_52x52": ("Conv", c, 64, 52, 1, 1, 1) for c in (64, 65, 128)},
    **{f"conv1x1_c64_k{k}_52x52": ("Conv", 64, k, 52, 1, 1, 1) for k in (16, 17, 32)},
    **{f"conv3x3_c64_{s}x{s}": ("Conv", 64, 64, s, 3, 1, 1) for s in (52, 104, 208)},
    "conv3x3s2_c64_208x208": ("Conv", 64, 64, 208, 3, 2, 1),
    "conv3x3_c3_416x416": ("Conv", 3, 16, 416, 3, 1, 1),
    "add_c64_416x416": ("Add", 64, 64, 416, 1, 1, 1),
    "relu_chain_64": ("Relu", 16, 16, 8, 1, 1, 64),
    # 1x1 convolutions separated by LeakyRelu (which Xavier's DLA cannot run): n DLA islands
    **{f"islands_{n}": ("Islands", 16, 16, 8, 1, 1, n) for n in (5, 9)},
    **{f"op_{op}": (op, 16, 16, 8, 1, 1, 1) for op in ("LeakyRelu", "Mish", "Reshape", "Transpose",
                                                        "Softmax", "Slice", "Resize")},
}


def probe_model(name: str):
    """The probe model `name` of PROBES, as an ONNX ModelProto (opset 13, fp32 IO)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    op, c, k, size, kern, stride, repeat = PROBES[name]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, size, size])
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    out_shape = [1, c, size, size]
    for r in range(repeat):
        out = f"y{r}" if r < repeat - 1 else "y"
        if op == "Conv":
            w = numpy_helper.from_array((rng.standard_normal((k, c, kern, kern)) * 0.1).astype(np.float32), "w")
            inits.append(w)
            nodes.append(helper.make_node("Conv", [prev, "w"], [out], kernel_shape=[kern, kern],
                                          strides=[stride, stride], pads=[kern // 2] * 4))
            side = (size + 2 * (kern // 2) - kern) // stride + 1
            out_shape = [1, k, side, side]
        elif op == "Add":
            nodes.append(helper.make_node("Add", [prev, prev], [out]))
        elif op == "Islands":
            w = numpy_helper.from_array((rng.standard_normal((k, c, 1, 1)) * 0.1).astype(np.float32), f"w{r}")
            inits.append(w)
            nodes += [helper.make_node("Conv", [prev, f"w{r}"], [f"c{r}"], kernel_shape=[1, 1]),
                      helper.make_node("LeakyRelu", [f"c{r}"], [out], alpha=0.1)]
        elif op == "Reshape":
            inits.append(numpy_helper.from_array(np.array([1, c * 4, size // 2, size // 2], np.int64), "shape"))
            nodes.append(helper.make_node("Reshape", [prev, "shape"], [out]))
            out_shape = [1, c * 4, size // 2, size // 2]
        elif op == "Transpose":
            nodes.append(helper.make_node("Transpose", [prev], [out], perm=[0, 1, 3, 2]))
        elif op == "Slice":
            for n, v in (("starts", [0]), ("ends", [c // 2]), ("axes", [1])):
                inits.append(numpy_helper.from_array(np.array(v, np.int64), n))
            nodes.append(helper.make_node("Slice", [prev, "starts", "ends", "axes"], [out]))
            out_shape = [1, c // 2, size, size]
        elif op == "Resize":
            inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
            nodes.append(helper.make_node("Resize", [prev, "", "scales"], [out], mode="nearest"))
            out_shape = [1, c, size * 2, size * 2]
        elif op == "Softmax":
            nodes.append(helper.make_node("Softmax", [prev], [out], axis=1))
        elif op == "Mish":     # Mish as ONNX writes it before opset 18: x * tanh(softplus(x))
            nodes += [helper.make_node("Softplus", [prev], ["sp"]), helper.make_node("Tanh", ["sp"], ["th"]),
                      helper.make_node("Mul", [prev, "th"], [out])]
        else:
            nodes.append(helper.make_node(op, [prev], [out]))
        prev = out
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, name, [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             producer_name="hetsched-probe")


def write_probes(folder) -> list[Path]:
    import onnx
    from ..atomic import write_bytes
    folder = Path(folder)
    paths = []
    for name in PROBES:
        path = folder / f"{name}.onnx"
        write_bytes(path, probe_model(name).SerializeToString())
        paths.append(path)
    onnx.checker.check_model(str(paths[0]))
    return paths

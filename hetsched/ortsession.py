"""onnxruntime sessions configured the way every CPU measurement and engine in hetsched uses them."""

from __future__ import annotations

import numpy as np
import onnx
from .errors import HetschedError

OPT_LEVELS = ("disable", "basic", "extended", "all")


def session_options(threads: int = 1, opt_level: str = "disable"):
    """Explicit intra-op threads and no spinning (idle stages must not burn the cores their
    neighbours need). `disable` keeps node names 1:1 with the model."""
    import onnxruntime as ort

    if opt_level not in OPT_LEVELS:
        raise HetschedError(f"onnxruntime optimisation level '{opt_level}' is not one of {OPT_LEVELS}")
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[opt_level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def session(model: onnx.ModelProto | bytes, threads: int = 1, opt_level: str = "disable",
            profile_prefix: str | None = None, optimized_path: str | None = None):
    """A CPU session configured by `session_options`, optionally tracing every node and writing
    the graph as optimised (`optimized_path`: what the trace's node names refer to)."""
    import onnxruntime as ort

    so = session_options(threads, opt_level)
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def random_feeds(sess, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the session's (concrete) shapes: floats N(0,1), other types zero."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if "float" in i.type:
            dtype = np.float16 if "float16" in i.type else np.float32
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[i.name] = np.zeros(shape, dtype=np.int64 if "int64" in i.type else np.int32)
    return feeds

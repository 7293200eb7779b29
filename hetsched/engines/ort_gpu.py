"""onnxruntime's CUDA and TensorRT execution providers (the `gpu` extra: onnxruntime-gpu).

Imported only when a PE asks for one of these backends. Not exercised on real hardware yet: no
GPU was available to the sessions that wrote it (README, "Hardware actually exercised").
"""

from __future__ import annotations

import os

import numpy as np

from . import EngineError, EngineOptions, gpu_index


def _require(pe: str, provider: str) -> None:
    import onnxruntime as ort
    if provider not in ort.get_available_providers():
        raise EngineError(f"{pe}: onnxruntime {ort.__version__} has no {provider} (install "
                          f"hetsched[gpu], which replaces onnxruntime with onnxruntime-gpu)")


class OrtGpuEngine:
    def __init__(self, model, pe: str, opts: EngineOptions, providers: list):
        import onnxruntime as ort
        from ..ortsession import session_options
        wanted = providers[0][0]
        _require(pe, wanted)
        self.pe = pe
        so = session_options(opts.threads, opts.optimization)
        try:
            self._sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers)
        except Exception as e:
            raise EngineError(f"{pe}: {wanted} could not load the stage: {e}") from None
        self.input_names = [i.name for i in self._sess.get_inputs()]
        self.output_names = [o.name for o in self._sess.get_outputs()]

    def run(self, feeds):
        outs = self._sess.run(self.output_names, {n: np.ascontiguousarray(feeds[n])
                                                  for n in self.input_names})
        return dict(zip(self.output_names, outs))

    def close(self):
        self._sess = None


def open_cuda(model, pe, opts: EngineOptions) -> OrtGpuEngine:
    return OrtGpuEngine(model, pe, opts, [("CUDAExecutionProvider", {"device_id": gpu_index(pe)})])


def open_tensorrt(model, pe, opts: EngineOptions) -> OrtGpuEngine:
    _require(pe, "TensorrtExecutionProvider")
    cache = opts.cache_dir or os.path.join("out", "trt-cache")
    os.makedirs(cache, exist_ok=True)
    trt_opts = {"device_id": gpu_index(pe), "trt_engine_cache_enable": True,
                "trt_engine_cache_path": cache, "trt_fp16_enable": opts.precision == "fp16",
                "trt_int8_enable": opts.precision == "int8"}
    return OrtGpuEngine(model, pe, opts, [("TensorrtExecutionProvider", trt_opts),
                                          ("CUDAExecutionProvider", {"device_id": gpu_index(pe)})])

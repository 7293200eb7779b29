"""Native TensorRT engines on a GPU or a DLA core, with `cuda-python` for memory and streams.

Builds one engine per stage from its ONNX sub-model (or loads it from the on-disk cache, keyed by
the sub-model's hash, the precision, the PE and the TensorRT version), then runs it with
`execute_async_v3` on its own stream; host buffers are page-locked so copies overlap.
Builder flags: TensorRT 8-10 take precision as builder flags (FP16/INT8; a DLA needs one of them,
plus GPU_FALLBACK so layers the DLA cannot run fall back instead of failing the build); TensorRT 11
removed those flags in favour of strongly typed networks, where precision follows the ONNX types.

Imported only when a PE asks for it. Not exercised on real hardware yet (README).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading

import numpy as np

from ..atomic import write_bytes
from . import EngineError, EngineOptions, dla_core, gpu_index

log = logging.getLogger(__name__)
_build_lock = threading.Lock()  # builders are memory-hungry; build one engine at a time


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise EngineError("the tensorrt backend needs cuda-python (pip install hetsched[gpu])") from None
    return cudart


def _check(result, what):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EngineError(f"CUDA {what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def _trt():
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineError("TensorRT is not installed (JetPack ships it; elsewhere "
                          "pip install hetsched[tensorrt])") from None
    return trt


def build_engine(model_bytes: bytes, pe: str, precision: str, gpu_fallback: bool = True) -> bytes:
    """A serialized engine; on a DLA without `gpu_fallback`, a layer the DLA cannot run fails
    the build (that is how the Jetson profiling script finds the DLA's null costs)."""
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    major = int(trt.__version__.split(".")[0])
    builder = trt.Builder(logger)
    strongly_typed = not hasattr(trt.BuilderFlag, "FP16")  # TensorRT 11
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif major < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model_bytes):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{pe}: TensorRT could not parse the stage: {errs}")
    config = builder.create_builder_config()
    if not strongly_typed:
        if precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # no calibrator: dynamic ranges must be set
    elif precision != "fp32":
        log.warning("%s: TensorRT %s builds strongly typed networks; precision follows the ONNX "
                    "types, not '%s'", pe, trt.__version__, precision)
    core = dla_core(pe)
    if core is not None:
        if builder.num_DLA_cores <= core:
            raise EngineError(f"{pe}: this board has {builder.num_DLA_cores} DLA core(s)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = core
        if gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"{pe}: TensorRT failed to build the stage engine (see its log above)")
    return bytes(plan)


def cached_engine(model_bytes: bytes, pe: str, precision: str, cache_dir: str) -> bytes:
    trt = _trt()
    key = hashlib.sha256(model_bytes).hexdigest()[:16]
    path = os.path.join(cache_dir, f"{key}.{precision}.{pe}.trt{trt.__version__}.engine")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with _build_lock:
        data = build_engine(model_bytes, pe, precision)
    write_bytes(path, data)
    return data


class TensorRTEngine:
    def __init__(self, model, pe: str, opts: EngineOptions):
        trt = _trt()
        self.cudart = cudart = _cudart()
        self.pe = pe
        _check(cudart.cudaSetDevice(0 if dla_core(pe) is not None else gpu_index(pe)), "cudaSetDevice")
        data = cached_engine(model.SerializeToString(), pe, opts.precision,
                             opts.cache_dir or os.path.join("out", "trt-cache"))
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if dla_core(pe) is not None:
            runtime.DLA_core = dla_core(pe)
        self._engine = runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise EngineError(f"{pe}: TensorRT could not load the cached engine")
        self._ctx = self._engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.input_names, self.output_names = [], []
        self._host, self._dev = {}, {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(self._engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            ptr = _check(cudart.cudaMallocHost(nbytes), "cudaMallocHost")
            self._host[name] = np.ctypeslib.as_array(
                (np.ctypeslib.ctypes.c_byte * nbytes).from_address(int(ptr))).view(dtype).reshape(shape)
            self._dev[name] = _check(cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._ctx.set_tensor_address(name, int(self._dev[name]))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.input_names.append(name)
            else:
                self.output_names.append(name)

    def run(self, feeds):
        c = self.cudart
        h2d, d2h = c.cudaMemcpyKind.cudaMemcpyHostToDevice, c.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n in self.input_names:
            np.copyto(self._host[n], feeds[n], casting="same_kind")
            _check(c.cudaMemcpyAsync(self._dev[n], self._host[n].ctypes.data,
                                     self._host[n].nbytes, h2d, self._stream), "copy in")
        if not self._ctx.execute_async_v3(int(self._stream)):
            raise EngineError(f"{self.pe}: TensorRT execution failed")
        for n in self.output_names:
            _check(c.cudaMemcpyAsync(self._host[n].ctypes.data, self._dev[n],
                                     self._host[n].nbytes, d2h, self._stream), "copy out")
        _check(c.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {n: self._host[n].copy() for n in self.output_names}

    def close(self):
        c = self.cudart
        for ptr in self._dev.values():
            c.cudaFree(ptr)
        for arr in self._host.values():
            c.cudaFreeHost(arr.ctypes.data)
        self._dev, self._host = {}, {}
        c.cudaStreamDestroy(self._stream)
        self._ctx = self._engine = None


def open_engine(model, pe, opts: EngineOptions) -> TensorRTEngine:
    return TensorRTEngine(model, pe, opts)

"""What travels through the pipeline: one frame and everything computed from it so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Frame:
    index: int                       # position in the source
    image: np.ndarray | None         # the decoded frame (dropped after pre-processing unless a sink needs it)
    t_read: float                    # perf_counter when the source produced it
    seq: int = -1                    # position in the pipeline's output order
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] | None = None   # the network inputs, kept only for --dump
    meta: Any = None                 # pre-processing facts post-processing needs (letterbox)
    result: Any = None               # post-processing output (detections)
    t_done: float = 0.0

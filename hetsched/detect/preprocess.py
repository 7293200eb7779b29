"""A frame (H x W x 3, uint8, BGR as OpenCV reads it) to a network input (1 x 3 x h x w, float32).

`letterbox` keeps the aspect ratio and pads (darknet and the YOLO family), `resize` stretches.
`Letterbox` remembers the scale and padding so boxes can be mapped back to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_w: int
    frame_h: int

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (N x 4, x1 y1 x2 y2) in network-input pixels -> frame pixels, clipped."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, self.frame_w)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, self.frame_h)
        return out


@dataclass(frozen=True)
class PreConfig:
    size: tuple[int, int]             # network input (h, w)
    letterbox: bool = True
    rgb: bool = True                  # darknet models take RGB; PP-OCR takes BGR
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 127


def preprocess(frame: np.ndarray, cfg: PreConfig) -> tuple[np.ndarray, Letterbox]:
    """Resizing, padding and splitting the planes are OpenCV calls and the scaling one numpy
    loop per contiguous plane: all of them outside Python's interpreter lock, which the threads
    of a loop whose network runs on accelerators contend for (scripts/closing_loop.py). Scaling
    the interleaved image after flipping and transposing it, as numpy views, walked memory with
    strides of 12 bytes and took 2.4-8x as long on the 2-core VM (`cv2.dnn.blobFromImage`, the
    same steps in one call, was slower still with OpenCV on one thread, which the runtime sets;
    scripts/prepost_bench.py)."""
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 frame, got shape {getattr(frame, 'shape', None)}")
    fh, fw = frame.shape[:2]
    h, w = cfg.size
    if cfg.letterbox:
        s = min(w / fw, h / fh)
        nw, nh = max(1, round(fw * s)), max(1, round(fh * s))
        px, py = (w - nw) // 2, (h - nh) // 2
        canvas = cv2.copyMakeBorder(cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR),
                                    py, h - nh - py, px, w - nw - px, cv2.BORDER_CONSTANT,
                                    value=(cfg.pad_value,) * 3)
        box = Letterbox(nw / fw, nh / fh, px, py, fw, fh)
    else:
        canvas = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(w / fw, h / fh, 0.0, 0.0, fw, fh)
    planes = cv2.split(canvas)                      # B, G, R
    if cfg.rgb:
        planes = planes[::-1]
    x = np.empty((1, 3, h, w), np.float32)
    for k, p in enumerate(planes):
        np.multiply(p, np.float32(cfg.scale), out=x[0, k], dtype=np.float32)
    if any(cfg.mean) or any(s != 1.0 for s in cfg.std):
        x -= np.asarray(cfg.mean, np.float32).reshape(1, 3, 1, 1)
        x /= np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1)
    return x, box

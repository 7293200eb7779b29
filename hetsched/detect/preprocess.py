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
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 frame, got shape {getattr(frame, 'shape', None)}")
    fh, fw = frame.shape[:2]
    h, w = cfg.size
    if cfg.letterbox:
        s = min(w / fw, h / fh)
        nw, nh = max(1, round(fw * s)), max(1, round(fh * s))
        px, py = (w - nw) // 2, (h - nh) // 2
        canvas = np.full((h, w, 3), cfg.pad_value, np.uint8)
        canvas[py:py + nh, px:px + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(nw / fw, nh / fh, px, py, fw, fh)
    else:
        canvas = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        box = Letterbox(w / fw, h / fh, 0.0, 0.0, fw, fh)
    if cfg.rgb:
        canvas = canvas[:, :, ::-1]
    x = canvas.astype(np.float32) * np.float32(cfg.scale)
    if any(cfg.mean) or any(s != 1.0 for s in cfg.std):
        x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), box

"""Where frames come from: a video file, a camera, a folder of images, or a deterministic
synthetic video (moving shapes, optional text) so that the demo and the tests need no data.

`open_source(spec)` reads the one-string form the command line and pipeline specs use:
`synthetic[:WxH][:text]`, `camera:N`, a folder, or a video file. Every problem is one line that
names the source.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..errors import HetschedError

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SourceError(HetschedError):
    pass


class SyntheticSource:
    """Frame i is a pure function of (i, seed): shapes drift across a gradient, so consecutive
    frames differ and any frame can be regenerated to check a result."""

    def __init__(self, width: int = 640, height: int = 480, frames: int | None = None,
                 seed: int = 0, text: bool = False):
        if width < 32 or height < 32:
            raise SourceError(f"synthetic source: {width}x{height} is smaller than 32x32")
        self.name = f"synthetic:{width}x{height}" + (":text" if text else "")
        self.width, self.height, self.frames, self.text = width, height, frames, text
        rng = np.random.default_rng(seed)
        self._shapes = [(rng.integers(0, 3), rng.uniform(0.05, 0.25), rng.uniform(0, 1, 2),
                         rng.uniform(-0.01, 0.01, 2), tuple(int(c) for c in rng.integers(0, 256, 3)))
                        for _ in range(6)]
        gy, gx = np.mgrid[0:height, 0:width]
        self._bg = np.stack([(gx * 255 // width), (gy * 255 // height),
                             np.full_like(gx, 96)], -1).astype(np.uint8)
        self._i = 0

    def frame(self, i: int) -> np.ndarray:
        img = self._bg.copy()
        w, h = self.width, self.height
        for kind, size, pos, vel, colour in self._shapes:
            x, y = (pos + vel * i) % 1.0
            cx, cy, r = int(x * w), int(y * h), max(4, int(size * min(w, h)))
            if kind == 0:
                cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
            elif kind == 1:
                cv2.circle(img, (cx, cy), r, colour, -1)
            else:
                pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
                cv2.fillPoly(img, [pts], colour)
        if self.text:
            for k, word in enumerate(("hetsched", f"frame {i:06d}", "pipeline stages")):
                cv2.putText(img, word, (20 + (i * 3) % max(1, w // 4), 60 + k * h // 4),
                            cv2.FONT_HERSHEY_SIMPLEX, max(0.6, w / 640), (255, 255, 255), 2)
        return img

    def read(self):
        if self.frames is not None and self._i >= self.frames:
            return None
        img = self.frame(self._i)
        self._i += 1
        return img

    def close(self):
        pass


class VideoSource:
    def __init__(self, spec: str, capture_arg=None):
        self.name = spec
        self._cap = cv2.VideoCapture(spec if capture_arg is None else capture_arg)
        if not self._cap.isOpened():
            what = "camera" if capture_arg is not None else "video"
            raise SourceError(f"cannot open {what} '{spec}' (missing, unreadable, or a format "
                              f"this OpenCV cannot decode)")
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        # a file's container lists its frames (a camera's, nothing): fewer read means a
        # truncated file, which OpenCV ends as quietly as a whole one
        self._listed = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture_arg is None else 0
        self._read = 0

    def read(self):
        ok, img = self._cap.read()
        if ok:
            self._read += 1
            return img
        # containers estimate the count from the duration for some codecs: a frame or 2% off
        if self._listed and self._read < self._listed - max(1, self._listed // 50):
            log.warning("video '%s' ended after %d of the %d frames its container lists "
                        "(truncated, or frames this OpenCV cannot decode)",
                        self.name, self._read, self._listed)
            self._listed = 0        # said once
        return None

    def close(self):
        self._cap.release()


class FolderSource:
    def __init__(self, folder: Path):
        self.name = str(folder)
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self._files:
            raise SourceError(f"folder '{folder}' holds no images ({', '.join(sorted(IMAGE_EXTS))})")
        self._i = 0

    def read(self):
        if self._i >= len(self._files):
            return None
        path = self._files[self._i]
        self._i += 1
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(f"cannot read image '{path}'")
        return img

    def close(self):
        pass


def open_source(spec: str, frames: int | None = None, seed: int = 0):
    """A source from its string form (see the module docstring)."""
    if spec.startswith("synthetic"):
        parts = spec.split(":")[1:]
        width, height, text = 640, 480, False
        for part in parts:
            if part == "text":
                text = True
            elif "x" in part:
                try:
                    width, height = (int(v) for v in part.split("x"))
                except ValueError:
                    raise SourceError(f"source '{spec}': '{part}' is not WxH") from None
            elif part:
                raise SourceError(f"source '{spec}': unknown option '{part}' (synthetic[:WxH][:text])")
        return SyntheticSource(width, height, frames, seed, text)
    if spec.startswith("camera:"):
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise SourceError(f"source '{spec}': camera index must be a number (camera:0)") from None
        return VideoSource(spec, index)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise SourceError(f"source '{spec}': no such file or folder (or use synthetic, camera:N)")
    return VideoSource(spec)

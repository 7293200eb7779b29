"""Where results go: JSON lines of detections per frame, an annotated video, or `--dump` files of
every frame's network inputs and outputs. Files are written beside their final name and renamed
when the run ends well (or is stopped by the user: what was written is complete up to the last
frame); an error removes them, so no half-written output is ever left under the final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path
from .frame import Frame


class _AtomicFile:
    """A file that appears under `path` only when `close(keep=True)` says so."""

    def __init__(self, path):
        self.path = Path(path)
        self._ctx = atomic_path(self.path)
        self.tmp = self._ctx.__enter__()

    def finish(self, keep: bool) -> None:
        if keep:
            self._ctx.__exit__(None, None, None)
        else:
            err = RuntimeError("discarded")
            try:
                self._ctx.__exit__(type(err), err, None)
            except RuntimeError:
                pass


def result_record(frame: Frame) -> dict:
    rec = {"seq": frame.seq, "index": frame.index}
    if frame.result is not None and hasattr(frame.result, "to_list"):
        rec["detections"] = frame.result.to_list()
    return rec


class JsonlSink:
    def __init__(self, path):
        self.name = str(path)
        self._file = _AtomicFile(path)
        self._fh = open(self._file.tmp, "w")

    def write(self, frame: Frame) -> None:
        self._fh.write(json.dumps(result_record(frame)) + "\n")

    def close(self, keep: bool) -> None:
        self._fh.close()
        self._file.finish(keep)


def draw(image: np.ndarray, result) -> np.ndarray:
    img = image.copy()
    for det in result.to_list() if result is not None else []:
        if "box" in det:
            x1, y1, x2, y2 = (int(v) for v in det["box"])
            colour = tuple(int(c) for c in np.random.default_rng(det["class"]).integers(64, 256, 3))
            cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
            cv2.putText(img, f"{det['class']} {det['score']:.2f}", (x1, max(10, y1 - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
        elif "quad" in det:
            cv2.polylines(img, [np.asarray(det["quad"], np.int32)], True, (0, 255, 0), 2)
    return img


class VideoSink:
    """Frames with their boxes drawn; needs the pipeline to keep each frame's image."""
    needs_image = True

    def __init__(self, path, fps: float = 25.0):
        self.name = str(path)
        self.fps = fps or 25.0
        self._file = _AtomicFile(path)
        self._tmp = self._file.tmp.with_suffix(Path(path).suffix or ".mp4")
        self._writer = None

    def write(self, frame: Frame) -> None:
        img = draw(frame.image, frame.result)
        if self._writer is None:
            h, w = img.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"OpenCV cannot write video '{self.name}'")
        self._writer.write(img)

    def close(self, keep: bool) -> None:
        if self._writer is not None:
            self._writer.release()
        if self._tmp.exists():
            os.replace(self._tmp, self._file.tmp)
        self._file.finish(keep and self._writer is not None)


class DumpSink:
    """`DIR/NNNNNN.npz` per frame (NNNNNN = sequence number): network inputs under `in/<tensor>`,
    outputs under `out/<tensor>`, so the pipeline can be checked against the unsplit model."""
    needs_inputs = True

    def __init__(self, folder, outputs: list[str]):
        self.name = str(folder)
        self.folder = Path(folder)
        self._made = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.outputs = outputs
        self._written: list[Path] = []

    def write(self, frame: Frame) -> None:
        arrays = {f"in/{k}": v for k, v in (frame.inputs or {}).items()}
        arrays.update({f"out/{k}": frame.tensors[k] for k in self.outputs})
        path = self.folder / f"{frame.seq:06d}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        self._written.append(path)

    def close(self, keep: bool) -> None:
        # like the other sinks: an error leaves nothing behind, not even the folder it made
        if keep:
            return
        for path in self._written:
            path.unlink(missing_ok=True)
        if self._made:
            try:
                self.folder.rmdir()
            except OSError:
                pass

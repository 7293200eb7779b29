"""The real pretrained detector that ships inside a PyPI wheel: PP-OCRv6's DB text detector in
`rapidocr` (Apache-2.0). It is located through the wheel's metadata, without importing the
package (whose own requirements are not installed: `make models` installs it with --no-deps)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from ..errors import HetschedError

PPOCR_DET = "rapidocr/models/PP-OCRv6_det_small.onnx"
PPOCR_INPUT = "x"
# PaddleOCR's detector pre-processing: RGB/255, then ImageNet mean and std.
PPOCR_MEAN = (0.485, 0.456, 0.406)
PPOCR_STD = (0.229, 0.224, 0.225)
INSTALL_HINT = "run `make models` (pip install --no-deps rapidocr==3.10.0)"


def ppocr_det_path() -> Path:
    try:
        dist = importlib.metadata.distribution("rapidocr")
    except importlib.metadata.PackageNotFoundError:
        raise HetschedError(f"the PP-OCR detector needs the rapidocr wheel: {INSTALL_HINT}") from None
    path = Path(dist.locate_file(PPOCR_DET))
    if not path.is_file():
        raise HetschedError(f"rapidocr {dist.version} has no {PPOCR_DET}: {INSTALL_HINT}")
    return path

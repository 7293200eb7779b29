"""Darknet .cfg (+ optional .weights) to ONNX.

The cfg grammar is darknet's own: `[section]` headers, `key=value` lines, `#` and `;` comments.
Every section keeps the line it started on, so an error names the file, the line and the section.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from ..errors import DarknetError
from .builder import DarknetWeights, build
from .sections import Section

log = logging.getLogger("hetsched")


def parse_cfg(path) -> list[Section]:
    path = Path(path)
    if not path.is_file():
        raise DarknetError(f"{path}: no such cfg file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DarknetError(f"{path}: not a text file, so not a darknet cfg") from None
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise DarknetError(f"{path.name}:{lineno}: malformed section header {raw.strip()!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, lineno, path.name))
        elif "=" in line:
            if not sections:
                raise DarknetError(f"{path.name}:{lineno}: option before any [section]")
            key, value = line.split("=", 1)
            sections[-1].params[key.strip()] = value.strip()
            sections[-1].key_lines[key.strip()] = lineno
        else:
            raise DarknetError(f"{path.name}:{lineno}: expected [section] or key=value, got {raw.strip()!r}")
    if not sections:
        raise DarknetError(f"{path}: no sections, not a darknet cfg")
    return sections


def import_darknet(cfg, weights=None, *, size: int | None = None, seed: int = 0,
                   activation: str | None = None) -> onnx.ModelProto:
    sections = parse_cfg(cfg)
    if weights and not Path(weights).is_file():
        raise DarknetError(f"{weights}: no such darknet .weights file")
    reader = DarknetWeights(weights) if weights else None
    try:
        model = build(sections, name=Path(cfg).stem, size=size, weights=reader, seed=seed,
                      activation=activation)
    except DarknetError as e:
        if size and size % 32 and "different sizes" in str(e):
            # the likely cause, which the route's own message does not name
            low = max(32, size // 32 * 32)
            raise DarknetError(f"{e}: the input size {size} is not a multiple of 32, the "
                               f"detectors' total stride (try {low} or {low + 32})") from e
        raise
    for sec in sections:
        for key, line in sec.unread():
            log.warning("%s:%d [%s]: key '%s' is not read by hetsched's importer (ignored)",
                        sec.source, line, sec.kind, key)
    return model

"""A darknet cfg section (`[convolutional]` and its keys), shared by the cfg parser, the zoo's
hand-written networks and the ONNX builder. Its own module so that naming the zoo (the command
line's choices) does not import onnx."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DarknetError


@dataclass
class Section:
    kind: str
    params: dict[str, str] = field(default_factory=dict)
    line: int = 0            # line of the section header in its cfg (0 for zoo sections)
    source: str = "zoo"

    def where(self) -> str:
        return f"{self.source}:{self.line} [{self.kind}]" if self.line else f"{self.source} [{self.kind}]"

    def get(self, key, default=None, cast=int):
        if key not in self.params:
            return default
        raw = self.params[key]
        try:
            return cast(raw)
        except ValueError:
            raise DarknetError(f"{self.where()}: {key}={raw!r} is not a valid value") from None

    def ints(self, key, default=None):
        if key not in self.params:
            return default
        return self.get(key, cast=lambda s: [int(v) for v in s.split(",") if v.strip()])

    def floats(self, key, default=None):
        if key not in self.params:
            return default
        return self.get(key, cast=lambda s: [float(v) for v in s.split(",") if v.strip()])

"""A darknet cfg section (`[convolutional]` and its keys), shared by the cfg parser, the zoo's
hand-written networks and the ONNX builder. Its own module so that naming the zoo (the command
line's choices) does not import onnx."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DarknetError


# Keys darknet reads for training, or for inference details that do not change the network's
# outputs; a cfg carries them and the importer may ignore them without a word.
NOT_FOR_INFERENCE = {
    "net": {"batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue",
            "learning_rate", "burn_in", "max_batches", "policy", "steps", "scales", "mosaic",
            "letter_box", "flip", "blur", "gaussian_noise", "mixup", "cutmix", "max_chart_loss",
            "adam", "B1", "B2", "eps", "power", "step", "gamma", "seq_scales", "track",
            "time_steps", "label_smooth_eps", "ema_alpha", "burn_in_mult", "loss_scale",
            "dynamic_minibatch", "optimized_memory", "workspace_size_limit_MB", "jitter", "hflip"},
    "yolo": {"jitter", "ignore_thresh", "truth_thresh", "random", "iou_normalizer", "iou_loss",
             "cls_normalizer", "obj_normalizer", "nms_kind", "beta_nms", "resize", "max_delta",
             "iou_thresh", "counters_per_class", "label_smooth_eps", "focal_loss",
             "objectness_smooth", "track_history_size", "delta_normalizer", "embedding_layer",
             "random_classes"},
    "region": {"jitter", "random", "thresh", "rescore", "object_scale", "noobject_scale",
               "class_scale", "coord_scale", "bias_match", "absolute"},
}


@dataclass
class Section:
    kind: str
    params: dict[str, str] = field(default_factory=dict)
    line: int = 0            # line of the section header in its cfg (0 for zoo sections)
    source: str = "zoo"
    key_lines: dict[str, int] = field(default_factory=dict, repr=False)   # key -> its cfg line
    read: set[str] = field(default_factory=set, repr=False)   # the keys the builder asked for

    def unread(self) -> list[tuple[str, int]]:
        """(key, line) of the keys nothing read and darknet does not read for inference only."""
        quiet = NOT_FOR_INFERENCE.get(self.kind, set())
        return [(k, self.key_lines.get(k, self.line)) for k in self.params
                if k not in self.read and k not in quiet]

    def where(self) -> str:
        return f"{self.source}:{self.line} [{self.kind}]" if self.line else f"{self.source} [{self.kind}]"

    def get(self, key, default=None, cast=int):
        self.read.add(key)
        if key not in self.params:
            return default
        raw = self.params[key]
        try:
            return cast(raw)
        except ValueError:
            raise DarknetError(f"{self.where()}: {key}={raw!r} is not a valid value") from None

    def ints(self, key, default=None):
        self.read.add(key)
        if key not in self.params:
            return default
        return self.get(key, cast=lambda s: [int(v) for v in s.split(",") if v.strip()])

    def floats(self, key, default=None):
        self.read.add(key)
        if key not in self.params:
            return default
        return self.get(key, cast=lambda s: [float(v) for v in s.split(",") if v.strip()])

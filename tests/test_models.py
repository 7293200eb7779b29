"""The zoo and the darknet importer: real cfg files nobody here wrote, shapes the cfgs imply, and
darknet's arithmetic (folded batch norm, reorg) against a numpy reference."""

import json

import numpy as np
import onnx
import pytest

from hetsched import graph
from hetsched.errors import DarknetError, HetschedError
from hetsched.models.darknet import import_darknet
from hetsched.models.zoo import CFG_NAMES, ZOO, build_zoo

from conftest import images, run

# Output shapes each published cfg implies at its own [net] size (yolo2.cfg says 608, the rest 416).
CFG_OUTPUTS = {
    "yolo2.cfg": [(1, 425, 19, 19)],
    "yolo2tiny.cfg": [(1, 425, 13, 13)],
    "yolo3.cfg": [(1, 255, 13, 13), (1, 255, 26, 26), (1, 255, 52, 52)],
    "yolo3tiny.cfg": [(1, 255, 13, 13), (1, 255, 26, 26)],
    "yolo4tiny.cfg": [(1, 255, 13, 13), (1, 255, 26, 26)],
}


@pytest.mark.slow
@pytest.mark.parametrize("cfg", sorted(CFG_OUTPUTS))
def test_real_cfgs_import_and_run(cfg_dir, cfg):
    model = import_darknet(cfg_dir / cfg)
    onnx.checker.check_model(model)
    size = CFG_OUTPUTS[cfg][0][2] * 32
    outs = run(model, {"images": images((1, 3, size, size))}, threads=2)
    assert [o.shape for o in outs.values()] == CFG_OUTPUTS[cfg]
    assert all(np.isfinite(o).all() for o in outs.values())


def test_an_input_size_off_the_stride_is_named_as_the_cause(cfg_dir):
    """yolov3-tiny at 300: its route joins 20 x 20 and 19 x 19 maps; the error says why."""
    from hetsched.errors import DarknetError
    with pytest.raises(DarknetError, match=r"route joins layers of different sizes .*: the input "
                                           r"size 300 is not a multiple of 32, .* \(try 288 or 320\)"):
        import_darknet(cfg_dir / "yolo3tiny.cfg", size=300)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_matches_its_published_cfg(cfg_dir, name):
    zoo = graph.load(build_zoo(name, 416))
    imported = graph.load(import_darknet(cfg_dir / CFG_NAMES[name], size=416))
    assert len(zoo) == len(imported)
    assert [l.op for l in zoo.layers] == [l.op for l in imported.layers]
    assert [zoo.tensors[o].shape for o in zoo.outputs] == \
        [imported.tensors[o].shape for o in imported.outputs]
    assert zoo.metadata["hetsched.heads"] == imported.metadata["hetsched.heads"]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_runs(name):
    size = 320
    model = build_zoo(name, size, "relu")
    outs = run(model, {"images": images((1, 3, size, size))}, threads=2)
    heads = json.loads(dict((p.key, p.value) for p in model.metadata_props)["hetsched.heads"])
    assert len(outs) == len(heads)
    for head, out in zip(heads, outs.values()):
        assert out.shape[2:] == tuple(head["grid"])
        assert head["stride"][0] * head["grid"][0] == size
        assert np.isfinite(out).all() and 0.01 < float(np.sqrt((out ** 2).mean())) < 100
    assert not any(n.op_type == "LeakyRelu" for n in model.graph.node)


@pytest.mark.slow
def test_yolov3_outputs_at_416():
    model = build_zoo("yolov3", 416)
    outs = run(model, {"images": images((1, 3, 416, 416))}, threads=2)
    assert [o.shape for o in outs.values()] == [(1, 255, 13, 13), (1, 255, 26, 26), (1, 255, 52, 52)]
    heads = json.loads(dict((p.key, p.value) for p in model.metadata_props)["hetsched.heads"])
    assert heads[0]["anchors"] == [[116, 90], [156, 198], [373, 326]]
    assert [h["classes"] for h in heads] == [80, 80, 80]


def test_zoo_is_deterministic():
    a = build_zoo("tiny-yolov3", 64).SerializeToString()
    assert a == build_zoo("tiny-yolov3", 64).SerializeToString()
    assert a != build_zoo("tiny-yolov3", 64, seed=1).SerializeToString()


def test_zoo_rejects_bad_requests():
    with pytest.raises(HetschedError, match="multiple of 32"):
        build_zoo("yolov3", 400)
    with pytest.raises(HetschedError, match="unknown zoo model"):
        build_zoo("yolov9")
    with pytest.raises(HetschedError, match="activation"):
        build_zoo("yolov3", 416, "mish")


# ---------------------------------------------------------------- darknet arithmetic

def _leaky(x):
    return np.where(x > 0, x, 0.1 * x)


def _conv_ref(x, w, b, stride, pad):
    """Direct convolution, (C,H,W) input, (F,C,k,k) weights."""
    c, h, wd = x.shape
    f, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((f, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out + b[:, None, None]


def _reorg_ref(x, stride):
    """darknet's reorg_cpu(forward=0) index arithmetic, loop for loop."""
    c, h, w = x.shape
    out = np.zeros(x.size, x.dtype)
    flat = x.reshape(-1)
    out_c = c // (stride * stride)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                in_index = i + w * (j + h * k)
                c2 = k % out_c
                offset = k // out_c
                w2 = i * stride + offset % stride
                h2 = j * stride + offset // stride
                out_index = w2 + w * stride * (h2 + h * stride * c2)
                out[in_index] = flat[out_index]
    return out.reshape(c * stride * stride, h // stride, w // stride)


CFG = """[net]
width=8
height=8
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[reorg]
stride=2

[convolutional]
filters=4
size=1
stride=1
pad=1
activation=linear
"""


def _write_weights(path, arrays, major=0, minor=2):
    with open(path, "wb") as f:
        np.array([major, minor, 0], np.int32).tofile(f)
        np.array([0], np.int64 if major * 10 + minor >= 2 else np.int32).tofile(f)
        for a in arrays:
            np.asarray(a, np.float32).tofile(f)


def test_weights_fold_batchnorm_and_reorg_like_darknet(tmp_path):
    rng = np.random.default_rng(7)
    bias1, scale1 = rng.normal(size=8), rng.uniform(0.5, 2, 8)
    mean1, var1 = rng.normal(size=8), rng.uniform(0.5, 2, 8)
    w1 = rng.normal(size=(8, 3, 3, 3))
    bias2, w2 = rng.normal(size=4), rng.normal(size=(4, 32, 1, 1))
    cfg = tmp_path / "net.cfg"
    cfg.write_text(CFG)
    _write_weights(tmp_path / "net.weights", [bias1, scale1, mean1, var1, w1.ravel(), bias2, w2.ravel()])
    model = import_darknet(cfg, tmp_path / "net.weights")
    x = images((1, 3, 8, 8), seed=5)
    got = list(run(model, {"images": x}).values())[0][0]

    conv = _conv_ref(x[0].astype(np.float64), w1, np.zeros(8), 1, 1)
    bn = (conv - mean1[:, None, None]) / (np.sqrt(var1)[:, None, None] + 1e-6)
    y1 = _leaky(bn * scale1[:, None, None] + bias1[:, None, None])
    y2 = _reorg_ref(y1, 2)
    want = _conv_ref(y2, w2, bias2, 1, 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_weights_that_do_not_fit(tmp_path):
    cfg = tmp_path / "net.cfg"
    cfg.write_text(CFG)
    _write_weights(tmp_path / "short.weights", [np.zeros(10)])
    with pytest.raises(DarknetError, match=r"net.cfg:6 \[convolutional\]"):
        import_darknet(cfg, tmp_path / "short.weights")
    n = 8 * 4 + 8 * 27 + 4 + 4 * 32
    _write_weights(tmp_path / "long.weights", [np.zeros(n + 5)])
    with pytest.raises(DarknetError, match="5 floats left over"):
        import_darknet(cfg, tmp_path / "long.weights")


@pytest.mark.parametrize("act,op", [("mish", "Softplus"), ("swish", "Sigmoid"),
                                    ("logistic", "Sigmoid"), ("relu", "Relu")])
def test_activations_groups_route_avgpool(tmp_path, act, op):
    cfg = tmp_path / "a.cfg"
    cfg.write_text(f"""[net]
width=32
height=32
channels=3
[convolutional]
filters=8
size=3
stride=2
pad=1
groups=1
activation={act}
[route]
layers=-1
groups=2
group_id=1
[convolutional]
filters=4
size=3
groups=2
pad=1
activation=linear
[shortcut]
from=-2
activation=linear
[maxpool]
size=2
stride=1
[avgpool]
""")
    model = import_darknet(cfg)
    assert op in {n.op_type for n in model.graph.node}
    out = list(run(model, {"images": images((1, 3, 32, 32))}).values())[0]
    assert out.shape == (1, 4, 1, 1)


@pytest.mark.parametrize("body,match", [
    ("[convolutional]\nfilters=4\nactivation=gelu\n", r"b.cfg:5 \[convolutional\]: activation 'gelu'"),
    ("[lstm]\nbatch_normalize=1\n", r"b.cfg:5 \[lstm\]: section \[lstm\] is not supported"),
    ("[route]\nlayers=-3\n", r"b.cfg:5 \[route\]: layer reference -3"),
    ("[convolutional]\nfilters=4\nsize=x\n", r"size='x' is not a valid value"),
    ("junk line\n", r"b.cfg:5: expected \[section\]"),
])
def test_cfg_errors_name_the_section_and_line(tmp_path, body, match):
    cfg = tmp_path / "b.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\n\n" + body)
    with pytest.raises(DarknetError, match=match):
        import_darknet(cfg)


def test_cfg_file_errors(tmp_path):
    with pytest.raises(DarknetError, match="no such cfg"):
        import_darknet(tmp_path / "none.cfg")
    (tmp_path / "bin.cfg").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DarknetError, match="not a text file"):
        import_darknet(tmp_path / "bin.cfg")


def test_skip_heavy_networks_have_their_connectivity():
    """The two planner benchmarks of `SKIP_NETS`, against their definitions worked by hand.
    densenet-yolo: 3 dense blocks of 4 convs, conv k of a block reading the concat of the block
    input and the k earlier convs' outputs (concats of 2, 3, 4, 5 tensors, three times), so 5
    tensors cross a cut inside the last conv of a block. unet-yolo: four encoder levels whose
    outputs are concatenated by the decoder level of the same size (four 2-input concats, sizes
    52, 104, 208, 416 at input 416), so all four levels cross a cut at the bottleneck."""
    from hetsched.models.zoo import SKIP_NETS
    g = graph.load(build_zoo("densenet-yolo", 416))
    concats = [n for n in g.model.graph.node if n.op_type == "Concat"]
    assert [len(n.input) for n in concats] == [2, 3, 4, 5] * 3
    assert max(len(g.crossing(b)) for b in range(1, len(g))) == 5
    assert [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.model.graph.output] \
        == [[1, 425, 13, 13]]
    g = graph.load(build_zoo("unet-yolo", 416))
    concats = [n for n in g.model.graph.node if n.op_type == "Concat"]
    assert [len(n.input) for n in concats] == [2, 2, 2, 2]
    sizes = [g.tensors[n.output[0]].shape[-1] for n in concats]
    assert sizes == [52, 104, 208, 416]
    assert max(len(g.crossing(b)) for b in range(1, len(g))) >= 4
    outs = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.model.graph.output]
    assert outs == [[1, 255, 26, 26], [1, 255, 52, 52]]
    assert set(SKIP_NETS) == {"densenet-yolo", "unet-yolo"}


def test_darknet_keys_the_importer_does_not_read_are_named(tmp_path, caplog, cfg_dir):
    """An unknown key in a known section is a warning with file:line; darknet's training-only
    keys in the real cfgs are not; a missing --weights file is one line."""
    import logging
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[net]\nwidth=64\nheight=64\nchannels=3\nbatch=64\n[convolutional]\nfilters=85\n"
                   "size=3\nstride=1\npad=1\nactivation=leaky\nbogus_key=3\n"
                   "[yolo]\nmask=0\nanchors=10,13\nclasses=80\nnum=1\njitter=.3\n")
    with caplog.at_level(logging.WARNING, logger="hetsched"):
        import_darknet(cfg)
    assert [r.getMessage() for r in caplog.records] == [
        "t.cfg:12 [convolutional]: key 'bogus_key' is not read by hetsched's importer (ignored)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hetsched"):
        for name in CFG_NAMES.values():
            import_darknet(cfg_dir / name, size=64)
    assert caplog.records == []
    with pytest.raises(DarknetError, match=r"^.*nope.weights: no such darknet \.weights file$"):
        import_darknet(cfg, tmp_path / "nope.weights")
    (tmp_path / "few.cfg").write_text(cfg.read_text().replace("num=1", "num=3"))
    with pytest.raises(DarknetError, match=r"few.cfg:13 \[yolo\]: num=3 but anchors lists 1 pairs"):
        import_darknet(tmp_path / "few.cfg")


@pytest.mark.parametrize("c_from,c_prev,stride", [(64, 128, 1), (128, 64, 1), (64, 64, 2), (32, 48, 2)])
def test_shortcut_across_channel_counts_and_sizes_is_darknets(tmp_path, c_from, c_prev, stride):
    """darknet's shortcut_cpu worked by hand in numpy: out = prev; out[:, k, j, i] +=
    from[:, k, j*stride, i*stride] for k < min(c), the rest of prev unchanged."""
    cfg = tmp_path / "s.cfg"
    cfg.write_text(f"[net]\nwidth=32\nheight=32\nchannels=3\n"
                   f"[convolutional]\nfilters={c_from}\nsize=3\nstride=1\npad=1\nactivation=linear\n"
                   f"[convolutional]\nfilters={c_prev}\nsize=3\nstride={stride}\npad=1\nactivation=linear\n"
                   f"[shortcut]\nfrom=-2\nactivation=linear\n")
    model = import_darknet(cfg)
    g = graph.load(model)
    x = images((1, 3, 32, 32))
    out = run(model, {"images": x})[g.outputs[0]]
    assert out.shape == (1, c_prev, 32 // stride, 32 // stride)    # darknet: the previous layer's
    # the two convolutions' own outputs: the same model cut after them (layers 0 and 1)
    assert [l.op for l in g.layers[:2]] == ["Conv", "Conv"]
    env = run(g.split([2])[0], {"images": x})
    add, prev = env["L0.conv"], env["L1.conv"]
    assert add.shape[1] == c_from and prev.shape[1] == c_prev
    want = prev.copy()
    c = min(c_from, c_prev)
    want[:, :c] += add[:, :c, ::stride, ::stride]
    assert np.abs(out - want).max() <= 1e-4


def _weights_file(path, floats):
    """A darknet .weights file: header major 0, minor 2, revision 0, seen (8 bytes), then floats."""
    with open(path, "wb") as f:
        f.write(np.array([0, 2, 0], np.int32).tobytes() + np.zeros(1, np.int64).tobytes())
        f.write(np.asarray(floats, np.float32).tobytes())


@pytest.mark.parametrize("wtype,norm", [("per_feature", "none"), ("per_feature", "relu"),
                                        ("per_channel", "softmax"), ("none", "none")])
def test_weighted_shortcut_is_darknets(tmp_path, wtype, norm):
    """shortcut_multilayer_cpu worked by hand: out = prev x w0 + from_a x w1 + from_b x w2, the
    weights read from the .weights file after the convolutions' and normalised over the inputs."""
    c = 4
    convs = "".join(f"[convolutional]\nfilters={c}\nsize=1\nstride=1\npad=0\nactivation=linear\n"
                    for _ in range(3))
    cfg = tmp_path / "w.cfg"
    cfg.write_text(f"[net]\nwidth=8\nheight=8\nchannels=3\n{convs}"
                   f"[shortcut]\nfrom=-2,-3\nweights_type={wtype}\nweights_normalization={norm}\n"
                   f"activation=linear\n")
    rng = np.random.default_rng(3)
    conv_w = [rng.standard_normal(c + c * cin).astype(np.float32) for cin in (3, c, c)]  # bias, then weights
    n_w = {"none": 0, "per_feature": 3, "per_channel": 3 * c}[wtype]
    raw = rng.uniform(-1, 2, n_w).astype(np.float32)
    _weights_file(tmp_path / "w.weights", np.concatenate(conv_w + [raw]))
    model = import_darknet(cfg, tmp_path / "w.weights")
    g = graph.load(model)
    x = images((1, 3, 8, 8))
    out = run(model, {"images": x})[g.outputs[0]]
    env = run(g.split([3])[0], {"images": x})
    a, b, prev = env["L0.conv"], env["L1.conv"], env["L2.conv"]
    if wtype == "none":
        want = prev + b + a
    else:
        w = raw.reshape(3, -1).astype(np.float64)          # input i's weights (per channel: c of them)
        if norm == "relu":
            w = np.maximum(w, 0) / (1e-4 + np.maximum(w, 0).sum(axis=0))
        elif norm == "softmax":
            w = np.exp(w - w.max(axis=0)) / (1e-4 + np.exp(w - w.max(axis=0)).sum(axis=0))
        shape = (1, -1, 1, 1)
        want = prev * w[0].reshape(shape) + b * w[1].reshape(shape) + a * w[2].reshape(shape)
    assert out.shape == prev.shape and np.abs(out - want).max() <= 1e-4


def test_sam_scale_channels_and_local_avgpool_are_darknets(tmp_path):
    """[sam]: prev x from, element-wise; [scale_channels]: from (C x H x W) x prev (C x 1 x 1) per
    channel; [local_avgpool] size 3 stride 1: the mean over each window's in-bounds pixels."""
    cfg = tmp_path / "s.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n"
                   "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n"    # 0
                   "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=0\nactivation=logistic\n"  # 1
                   "[sam]\nfrom=-2\n"                                                             # 2
                   "[avgpool]\n"                                                                  # 3
                   "[scale_channels]\nfrom=-2\nactivation=linear\n"                              # 4
                   "[local_avgpool]\nsize=3\nstride=1\n")                                        # 5
    model = import_darknet(cfg)
    g = graph.load(model)
    x = images((1, 3, 8, 8))
    out = run(model, {"images": x})[g.outputs[0]]
    assert [l.op for l in g.layers[:3]] == ["Conv", "Conv", "Sigmoid"]
    env = run(g.split([3])[0], {"images": x})
    l0, l1 = env["L0.conv"], env["L1.logistic"]
    sam = l1 * l0
    scaled = sam * sam.mean(axis=(2, 3), keepdims=True)
    want = np.zeros_like(scaled)
    for i in range(8):
        for j in range(8):
            win = scaled[:, :, max(0, i - 1):i + 2, max(0, j - 1):j + 2]
            want[:, :, i, j] = win.mean(axis=(2, 3))
    assert out.shape == (1, 4, 8, 8) and np.abs(out - want).max() <= 1e-5


def test_yolo_head_new_coords_and_scale_x_y_are_darknets(tmp_path):
    """[yolo] new_coords=1, scale_x_y=2: the conv's logistic output is not activated again; centre
    (t x 2 - 0.5 + cell) / grid, size t^2 x 4 x anchor (get_yolo_box), worked by hand."""
    from hetsched.detect.yolo import decode_head
    cfg = tmp_path / "n.cfg"
    cfg.write_text("[net]\nwidth=64\nheight=64\nchannels=3\n"
                   "[convolutional]\nfilters=7\nsize=1\nstride=32\npad=0\nactivation=logistic\n"
                   "[yolo]\nmask=0\nanchors=10,14\nclasses=2\nnum=1\nscale_x_y=2.0\nnew_coords=1\n")
    g = graph.load(import_darknet(cfg))
    head = json.loads(g.metadata["hetsched.heads"])[0]
    assert head["new_coords"] == 1 and head["scale_x_y"] == 2.0
    t = np.zeros((1, 7, 2, 2), np.float32)
    t[0, :, 1, 0] = [0.75, 0.5, 0.5, 1.0, 0.9, 0.2, 0.8]     # cell (row 1, col 0): already logistic
    boxes, scores, classes = decode_head(t, head, (64, 64), 0.5)
    cx, cy = (0.75 * 2 - 0.5 + 0) / 2 * 64, (0.5 * 2 - 0.5 + 1) / 2 * 64
    w, h = 0.5 ** 2 * 4 * 10, 1.0 ** 2 * 4 * 14
    np.testing.assert_allclose(boxes[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)
    assert classes.tolist() == [1] and scores[0] == pytest.approx(0.9 * 0.8)


def test_gaussian_yolo_is_a_clear_error(tmp_path):
    cfg = tmp_path / "g.cfg"
    cfg.write_text("[net]\nwidth=64\nheight=64\nchannels=3\n"
                   "[convolutional]\nfilters=27\nsize=1\nstride=1\npad=0\nactivation=linear\n"
                   "[Gaussian_yolo]\nmask=0\nanchors=10,14\nclasses=2\nnum=1\n")
    with pytest.raises(DarknetError, match=r"g.cfg:\d+ \[gaussian_yolo\]: \[gaussian_yolo\] .* not supported"):
        import_darknet(cfg)


def test_maxpool_defaults_are_darknets(tmp_path):
    """parse_maxpool: stride defaults to 1 and size to the stride, padding to size - 1 (offset
    -padding/2); stride_x / stride_y override the stride. size=2 alone keeps the size."""
    cfg = tmp_path / "p.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n"
                   "[convolutional]\nfilters=2\nsize=1\nstride=1\npad=0\nactivation=linear\n"
                   "[maxpool]\nsize=2\n"
                   "[maxpool]\nsize=2\nstride_x=2\nstride_y=1\n")
    model = import_darknet(cfg)
    g = graph.load(model)
    x = images((1, 3, 8, 8))
    out = run(model, {"images": x})[g.outputs[0]]
    conv = run(g.split([1])[0], {"images": x})["L0.conv"]
    pad = np.pad(conv, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf)
    first = np.maximum.reduce([pad[:, :, dy:dy + 8, dx:dx + 8] for dy in (0, 1) for dx in (0, 1)])
    pad = np.pad(first, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf)
    want = np.maximum.reduce([pad[:, :, dy:dy + 8, dx:dx + 8:2] for dy in (0, 1) for dx in (0, 1)])
    assert out.shape == (1, 2, 8, 4) and np.abs(out - want).max() <= 1e-6

"""The graph model: loading errors, normalisation, sizes and FLOPs by hand, crossing sets and
splits checked against the unsplit model's outputs."""

import logging

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from hetsched import graph
from hetsched.errors import GraphError
from hetsched.models.zoo import build_zoo

from conftest import images, run, run_chain


def _model(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


# ---------------------------------------------------------------- loading errors

def test_missing_file(tmp_path):
    with pytest.raises(GraphError, match="no such model file"):
        graph.load(tmp_path / "nope.onnx")


def test_empty_and_text_files(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(GraphError, match="empty file"):
        graph.load(empty)
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n" * 10)
    with pytest.raises(GraphError, match="text.onnx"):
        graph.load(text)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, fraction):
    data = build_zoo("tiny-yolov3", 64).SerializeToString()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(GraphError, match="cut.onnx"):
        graph.load(bad)


def test_folder_is_not_a_model(tmp_path):
    with pytest.raises(GraphError, match="folder"):
        graph.load(tmp_path)


# ---------------------------------------------------------------- normalisation

def test_constants_become_initializers_and_identities_vanish():
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w_val")
    nodes = [
        helper.make_node("Constant", [], ["w"], value=w),
        helper.make_node("Identity", ["w"], ["w2"]),
        helper.make_node("Conv", ["x", "w2"], ["c"], name="conv"),
        helper.make_node("Identity", ["c"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["y"], name="relu"),
    ]
    m = _model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 4, 8, 8])])
    g = graph.load(m)
    assert [l.op for l in g.layers] == ["Conv", "Relu"]
    assert g.layers[0].inputs == ("x",)              # the weight is no activation
    assert g.crossing(1) == ["c"]                    # the identity's alias is gone
    x = images((1, 3, 8, 8))
    np.testing.assert_allclose(run(g.model, {"x": x})["y"], run(m, {"x": x})["y"])


def test_dynamic_dims_need_a_shape():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    m = _model(nodes, [_vi("x", ["N", 3, "H", "W"])], [_vi("y", ["N", 3, "H", "W"])])
    with pytest.raises(GraphError, match="--input-shape x="):
        graph.load(m)
    g = graph.load(m, {"x": [1, 3, 32, 48]})
    assert g.tensors["y"].shape == (1, 3, 32, 48)
    with pytest.raises(GraphError, match="rank"):
        graph.load(m, {"x": [1, 3, 32]})
    with pytest.raises(GraphError, match="model's inputs"):
        graph.load(m, {"z": [1]})


def test_dynamic_batch_defaults_to_one():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    m = _model(nodes, [_vi("x", ["N", 3, 4, 4])], [_vi("y", ["N", 3, 4, 4])])
    assert graph.load(m).tensors["x"].shape == (1, 3, 4, 4)


# ---------------------------------------------------------------- sizes and FLOPs, by hand

def test_conv_flops_groups_dilation_and_bytes():
    w = numpy_helper.from_array(np.zeros((8, 2, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], group=2, dilations=[2, 2],
                              pads=[2, 2, 2, 2], strides=[1, 1])]
    m = _model(nodes, [_vi("x", [1, 4, 10, 10])], [_vi("y", [1, 8, 10, 10])], [w])
    layer = graph.load(m).layers[0]
    # every output element: (Cin/groups) * k*k MACs = 2*9
    assert layer.macs == 8 * 10 * 10 * 2 * 9
    assert layer.flops == 2 * layer.macs
    assert layer.bytes_moved == 4 * (4 * 100 + 8 * 100) + 4 * 8 * 2 * 9


def test_other_op_flops():
    wt = numpy_helper.from_array(np.zeros((4, 2, 2, 2), np.float32), "wt")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    nodes = [
        helper.make_node("ConvTranspose", ["x", "wt"], ["ct"], strides=[2, 2], name="ct"),   # 1x2x8x8
        helper.make_node("MaxPool", ["ct"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="mp"),
        helper.make_node("Resize", ["mp", "", "s"], ["rs"], mode="nearest", name="rs"),
        helper.make_node("Add", ["rs", "ct"], ["ad"], name="ad"),
        helper.make_node("Reshape", ["ad", "shp"], ["fl"], name="fl"),
        helper.make_node("MatMul", ["fl", "b"], ["mm"], name="mm"),
    ]
    shp = numpy_helper.from_array(np.array([1, 128], np.int64), "shp")
    b = numpy_helper.from_array(np.zeros((128, 5), np.float32), "b")
    m = _model(nodes, [_vi("x", [1, 4, 4, 4])], [_vi("mm", [1, 5])], [wt, b, scales, shp])
    layers = {l.name: l for l in graph.load(m).layers}
    assert layers["ct"].macs == (4 * 4 * 4) * 2 * 2 * 2          # input elems * Cout * k*k
    assert layers["mp"].flops == (2 * 4 * 4) * 4                  # out elems * window
    assert layers["rs"].flops == 2 * 8 * 8
    assert layers["ad"].flops == 2 * 8 * 8
    assert layers["fl"].flops == 0
    assert layers["mm"].macs == 5 * 128


def test_unknown_op_warns(caplog):
    nodes = [helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")]
    m = _model(nodes, [_vi("x", [2, 2])], [_vi("y", [2, 2])], opset=13)
    with caplog.at_level(logging.WARNING):
        g = graph.load(m)
    assert g.layers[0].flops == 0
    assert "Einsum" in caplog.text


# ---------------------------------------------------------------- crossing sets and splits

def test_crossing_includes_skip_connections():
    g = graph.load(build_zoo("tiny-yolov3", 64))
    prod = g.producers()
    # the route from darknet layer 8 crosses every boundary between its producer and the concat
    concat = next(l for l in g.layers if l.op == "Concat")
    skip = next(t for t in concat.inputs if prod[t] < concat.index - 3)
    for b in range(prod[skip] + 1, concat.index + 1):
        assert skip in g.crossing(b)
    assert skip not in g.crossing(concat.index + 1)


def _check_split(g, boundaries, feeds, atol=1e-4):
    subs = g.split(boundaries)
    edges = [0, *sorted(set(boundaries)), len(g)]
    for k, sub in enumerate(subs):
        onnx.checker.check_model(sub)
        first, last = edges[k], edges[k + 1] - 1
        produced = {t for l in g.layers[first:last + 1] for t in l.outputs}
        consumed = {t for l in g.layers[first:last + 1] for t in l.inputs}
        assert {i.name for i in sub.graph.input} == consumed - produced
    full = run(g.model, feeds)
    env = run_chain(subs, feeds)
    for name in g.outputs:
        np.testing.assert_allclose(env[name], full[name], atol=atol, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-yolov2", "yolov2", "tiny-yolov3", "yolov4-tiny"])
def test_three_way_splits_chain_back(name):
    g = graph.load(build_zoo(name, 96))
    rng = np.random.default_rng(1)
    feeds = {"images": images((1, 3, 96, 96))}
    for _ in range(3):
        cuts = sorted(rng.choice(np.arange(1, len(g)), size=2, replace=False).tolist())
        _check_split(g, cuts, feeds)


@pytest.mark.slow
def test_every_single_boundary_split_of_yolov3(cfg_dir):
    """Darknet's own yolov3.cfg, every conv eight times thinner (the heads keep their 255
    outputs): the same 174 layers, routes and shortcuts, at a fiftieth of the session cost."""
    from hetsched.models.builder import build
    from hetsched.models.darknet import parse_cfg
    sections = parse_cfg(cfg_dir / "yolo3.cfg")
    for k, sec in enumerate(sections):
        if sec.kind == "convolutional" and sections[k + 1].kind != "yolo":
            sec.params["filters"] = str(max(1, int(sec.params["filters"]) // 8))
    g = graph.load(build(sections, name="yolo3-thin", size=64))
    feeds = {"images": images((1, 3, 64, 64))}
    full = run(g.model, feeds)
    assert len(g) == 174
    for b in range(1, len(g)):
        a, c = g.split([b])
        assert {i.name for i in c.graph.input} == set(g.crossing(b))
        env = run_chain([a, c], feeds)
        for name in g.outputs:
            diff = float(np.abs(env[name] - full[name]).max())
            assert diff <= 1e-4, f"boundary {b}: {name} differs by {diff}"


def test_split_rejects_bad_boundaries():
    g = graph.load(build_zoo("tiny-yolov3", 64))
    with pytest.raises(GraphError, match="boundaries"):
        g.split([0])
    with pytest.raises(GraphError, match="boundaries"):
        g.split([len(g)])


@st.composite
def random_dags(draw):
    """Random DAGs of elementwise ops where any layer may read any earlier tensor."""
    n = draw(st.integers(2, 12))
    tensors = ["x"]
    nodes = []
    ops = ["Relu", "Sigmoid", "Add", "Mul", "Sub"]
    for i in range(n):
        op = draw(st.sampled_from(ops))
        a = draw(st.sampled_from(tensors))
        ins = [a] if op in ("Relu", "Sigmoid") else [a, draw(st.sampled_from(tensors))]
        out = f"t{i}"
        nodes.append(helper.make_node(op, ins, [out], name=f"n{i}"))
        tensors.append(out)
    # every layer feeds an output: dangling tensors are summed, and one early tensor is also a
    # graph output of its own (a head produced mid-graph)
    read = {i for nd in nodes for i in nd.input}
    dangling = [t for t in tensors[1:] if t not in read]
    nodes.append(helper.make_node("Sum", dangling, ["y"], name="sum"))
    outs = ["y"]
    extra = draw(st.sampled_from(tensors[1:]))
    outs.append(extra)
    cuts = draw(st.lists(st.integers(1, n), max_size=4, unique=True))
    return nodes, outs, cuts


@settings(max_examples=60, deadline=None)
@given(random_dags())
def test_random_dag_splits_chain_back(case):
    nodes, outs, cuts = case
    m = _model(nodes, [_vi("x", [2, 3])], [_vi(o, [2, 3]) for o in outs])
    g = graph.load(m)
    feeds = {"x": images((2, 3), seed=3)}
    # crossing sets by definition, computed from the raw node list
    for b in range(1, len(g)):
        before = {"x"} | {o for nd in nodes[:b] for o in nd.output}
        after = {i for nd in nodes[b:] for i in nd.input}
        assert set(g.crossing(b)) == before & after
    _check_split(g, cuts, feeds, atol=1e-6)

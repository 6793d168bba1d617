"""Tiny ONNX models with the input/output shapes of buffalo_l's SCRFD, 2d106 and ArcFace files.

They are real ONNX graphs run by onnxruntime through insightface's router: the detector scores each
32 px cell by its brightness (a white square is a "face"), the landmark model returns a fixed
106-point shape, and the recogniser projects 16 px block means to 512 dimensions, so different
images give different embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DET_SIZE = 640
STRIDES = (8, 16, 32)
# kps offsets from the anchor centre, in strides: eyes, nose, mouth corners
KPS_OFFSETS = np.array([[-0.3, -0.2], [0.3, -0.2], [0.0, 0.1], [-0.25, 0.45], [0.25, 0.45]], dtype=np.float32)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"const_{name}", value=numpy_helper.from_array(array, name))


def build_detector(path: Path) -> Path:
    nodes, outputs = [], []
    cells = DET_SIZE // 32
    nodes += [
        helper.make_node(
            "AveragePool", ["input.1"], ["cell"], name="cellpool", kernel_shape=[32, 32], strides=[32, 32]
        ),
        helper.make_node("ReduceMean", ["cell"], ["gray"], name="gray", axes=[1], keepdims=1),
        _const("shape_col", np.array([cells * cells, 1], dtype=np.int64)),
        helper.make_node("Reshape", ["gray", "shape_col"], ["score_cells"], name="flatten_cells"),
        helper.make_node("Concat", ["score_cells", "score_cells"], ["score_pairs"], name="two_anchors", axis=1),
        _const("shape_anchor", np.array([cells * cells * 2, 1], dtype=np.int64)),
        helper.make_node("Reshape", ["score_pairs", "shape_anchor"], ["score_32"], name="anchor_scores"),
    ]
    scores, boxes, kpss = [], [], []
    for stride in STRIDES:
        n = (DET_SIZE // stride) ** 2 * 2
        if stride != 32:
            nodes.append(_const(f"score_{stride}", np.zeros((n, 1), dtype=np.float32)))
        nodes.append(_const(f"bbox_{stride}", np.ones((n, 4), dtype=np.float32)))
        nodes.append(_const(f"kps_{stride}", np.tile(KPS_OFFSETS.reshape(1, 10), (n, 1))))
        scores.append(helper.make_tensor_value_info(f"score_{stride}", TensorProto.FLOAT, [n, 1]))
        boxes.append(helper.make_tensor_value_info(f"bbox_{stride}", TensorProto.FLOAT, [n, 4]))
        kpss.append(helper.make_tensor_value_info(f"kps_{stride}", TensorProto.FLOAT, [n, 10]))
    outputs = scores + boxes + kpss
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, DET_SIZE, DET_SIZE])],
        outputs,
    )
    return _save(graph, path)


def mean_shape_106() -> np.ndarray:
    """106 points in [-1, 1]: jaw contour 0-32, outer lips 52-71 (insightface's 2d106 layout)."""
    points = np.zeros((106, 2), dtype=np.float32)
    angles = np.linspace(np.pi * 0.95, np.pi * 0.05, 33)
    points[:33] = np.stack([0.55 * np.cos(angles), 0.15 + 0.55 * np.sin(angles)], axis=1)
    lips = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    points[52:72] = np.stack([0.2 * np.cos(lips), 0.35 + 0.08 * np.sin(lips)], axis=1)
    rng = np.random.default_rng(106)
    rest = [i for i in range(106) if not (i < 33 or 52 <= i < 72)]
    points[rest] = rng.uniform(-0.35, 0.2, size=(len(rest), 2))
    return points


def build_landmark(path: Path) -> Path:
    nodes = [
        helper.make_node("ReduceMean", ["data"], ["level"], name="level", keepdims=0),
        _const("zero", np.array(0.0, dtype=np.float32)),
        helper.make_node("Mul", ["level", "zero"], ["nothing"], name="ignore_level"),
        _const("shape", mean_shape_106().reshape(1, 212)),
        helper.make_node("Add", ["shape", "nothing"], ["fc1"], name="add_shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_2d106",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])],
    )
    return _save(graph, path)


def build_recognizer(path: Path) -> Path:
    weights = np.random.default_rng(512).standard_normal((147, 512)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", ["input.1"], ["blocks"], name="blocks", kernel_shape=[16, 16], strides=[16, 16]
        ),
        helper.make_node("Flatten", ["blocks"], ["flat"], name="flat", axis=1),
        _const("proj", weights),
        helper.make_node("MatMul", ["flat", "proj"], ["683"], name="project"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", 512])],
    )
    return _save(graph, path)


def build_pack(root: Path, pack: str = "buffalo_l") -> Path:
    """Write ROOT/models/PACK with the buffalo_l file names; returns ROOT."""
    folder = root / "models" / pack
    folder.mkdir(parents=True, exist_ok=True)
    build_detector(folder / "det_10g.onnx")
    build_landmark(folder / "2d106det.onnx")
    build_recognizer(folder / "w600k_r50.onnx")
    return root

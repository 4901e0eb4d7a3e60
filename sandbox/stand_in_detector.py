"""The local demo's stand-in detector: an ONNX graph built here, not a trained model.

No registry package ships the weights of a COCO or YOLO detector (only a TF.js CenterNet whose weights' licence is
not stated, and OpenCV's Haar cascades for faces), so `make demo DEMO_ARGS="--prelabel"` proposes boxes with this
graph instead, and says so wherever its boxes show: its model version, every printed line, the Lambda logs, the
gallery's note and the demo's summary.

What it computes, from the pixels, in the "yolo-nms" layout ([1, 2, 6]: x1, y1, x2, y2, score, class id in input
pixels, an all-zero row when it found nothing) that `labeling_pipeline.prelabel.detector` reads as it reads
Ultralytics' export with NMS:

- class 0, a warm-coloured blob: where red outweighs green and blue (R - max(G, B));
- class 1, a cool-coloured blob: where blue outweighs red and green (B - max(R, G)).

Each of the two maps is averaged over cells of CELL x CELL input pixels; a cell passes when its mean reaches
half the best cell's and at least MIN_LEVEL (so a grey picture, and the letterbox's grey padding, pass nowhere).
The box is the extent of the passing cells, the score the share of the cells inside it that pass: one scattered
speck of colour scores low and is dropped at minScore, one solid patch scores high. Two boxes at most an image,
one a class, no NMS needed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL_VERSION = "stand-in-detector-1"
# Said wherever the stand-in's proposals show (printed lines, Lambda logs, the gallery, the summary).
STAND_IN_NOTE = "pre-labels from a stand-in detector (an ONNX graph that boxes colour blobs), not a trained model"
OUTPUT_LAYOUT = "yolo-nms"
INPUT_SIZE = 320  # fixed in the graph: the function letterboxes every image to it
CELL = 16
MIN_LEVEL = 0.1  # of 1.0: a cell's mean colour dominance below this is no colour at all
RELATIVE_LEVEL = 0.5  # of the best cell's
CLASSES = ("warm-coloured blob", "cool-coloured blob")
# The demo's labels are cdk.json's, Dog and Cat; a stand-in's classes map onto them as arbitrarily as they sound.
CLASS_MAP = {"0": "Cat", "1": "Dog"}
MIN_SCORE = 0.25

# What onnxruntime 1.32 reads (onnx's own default IR version runs ahead of it).
OPSET = 17
IR_VERSION = 9
INPUT, OUTPUT = "images", "output0"


def _constant(name: str, value: Any, dtype: type = np.float32) -> onnx.NodeProto:
    array: np.ndarray = np.asarray(value, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name=f"{name}_value"))


def _node(op: str, inputs: list[str], output: str, **attributes: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], **attributes)


def build_model() -> bytes:
    """The stand-in detector's ONNX file (the same bytes on every call)."""
    nodes = [
        _constant("cell", float(CELL)),
        _constant("one", 1.0),
        _constant("min_level", MIN_LEVEL),
        _constant("relative_level", RELATIVE_LEVEL),
        _constant("class_ids", [[[0.0], [1.0]]]),
        _constant("red_index", 0, np.int64),
        _constant("green_index", 1, np.int64),
        _constant("blue_index", 2, np.int64),
        _constant("class_axis", [1], np.int64),
        _constant("last_axis", [2], np.int64),
    ]
    for channel in ("red", "green", "blue"):
        nodes.append(_node("Gather", [INPUT, f"{channel}_index"], channel, axis=1))  # [1, H, W]
    nodes += [
        _node("Max", ["green", "blue"], "green_or_blue"),
        _node("Sub", ["red", "green_or_blue"], "warm"),
        _node("Max", ["red", "green"], "red_or_green"),
        _node("Sub", ["blue", "red_or_green"], "cool"),
        _node("Unsqueeze", ["warm", "class_axis"], "warm_map"),
        _node("Unsqueeze", ["cool", "class_axis"], "cool_map"),
        _node("Concat", ["warm_map", "cool_map"], "dominance", axis=1),  # [1, 2, H, W]
        _node("AveragePool", ["dominance"], "cells", kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        _node("ReduceMax", ["cells"], "best_cell", axes=[2, 3], keepdims=1),  # [1, 2, 1, 1]
        _node("Mul", ["best_cell", "relative_level"], "relative_threshold"),
        _node("Max", ["relative_threshold", "min_level"], "threshold"),
        _node("GreaterOrEqual", ["cells", "threshold"], "passes"),
        _node("Cast", ["passes"], "mask", to=TensorProto.FLOAT),  # [1, 2, cells, cells]
        _node("ReduceMax", ["mask"], "columns", axes=[2], keepdims=0),  # [1, 2, cells]
        _node("ReduceMax", ["mask"], "rows", axes=[3], keepdims=0),
        _node("ReduceMax", ["columns"], "found", axes=[2], keepdims=1),  # [1, 2, 1]: 1 when any cell passes
        _node("ReduceSum", ["mask", "last_axis"], "passing_by_row", keepdims=0),  # [1, 2, cells]
        _node("ReduceSum", ["passing_by_row", "last_axis"], "passing", keepdims=1),  # [1, 2, 1]
    ]
    for side, profile in (("x", "columns"), ("y", "rows")):
        nodes += [
            _node("ArgMax", [profile], f"first_{side}_index", axis=2, keepdims=1),
            _node("ArgMax", [profile], f"last_{side}_index", axis=2, keepdims=1, select_last_index=1),
            _node("Cast", [f"first_{side}_index"], f"first_{side}", to=TensorProto.FLOAT),
            _node("Cast", [f"last_{side}_index"], f"last_{side}", to=TensorProto.FLOAT),
            _node("Add", [f"last_{side}", "one"], f"end_{side}"),
            _node("Sub", [f"end_{side}", f"first_{side}"], f"span_{side}"),  # in cells, at least 1
            _node("Mul", [f"first_{side}", "cell"], f"{side}1"),
            _node("Mul", [f"end_{side}", "cell"], f"{side}2"),
        ]
    nodes += [
        _node("Mul", ["span_x", "span_y"], "box_cells"),
        _node("Div", ["passing", "box_cells"], "score"),
        _node("Concat", ["x1", "y1", "x2", "y2", "score", "class_ids"], "rows_found", axis=2),  # [1, 2, 6]
        # A class that found nothing is an all-zero row: the padding Ultralytics writes after the last detection.
        _node("Mul", ["rows_found", "found"], OUTPUT),
    ]
    graph = helper.make_graph(
        nodes,
        MODEL_VERSION,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, len(CLASSES), 6])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="bbox-labeling local demo (stand-in detector)",
        doc_string=__doc__,
    )
    helper.set_model_props(
        model, {"stand_in": "true", "classes": json.dumps(dict(enumerate(CLASSES))), "model_version": MODEL_VERSION}
    )
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


def prelabel_setting(model_uri: str, hold_out_percent: int) -> dict[str, Any]:
    """`labeling.prelabel` for the stand-in, as the synthesis takes it."""
    return {
        "modelUri": model_uri,
        "outputLayout": OUTPUT_LAYOUT,
        "inputSize": INPUT_SIZE,
        "classMap": CLASS_MAP,
        "minScore": MIN_SCORE,
        "modelVersion": MODEL_VERSION,
        "holdOutPercent": hold_out_percent,
    }

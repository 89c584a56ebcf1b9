"""What each bundled model costs per inference, counted from its ``.tflite`` file.

Parameters and multiply-accumulates are read with the runtime alone (no TensorFlow), so
Pi timings can be estimated before they are measured on one.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate.exc import ModelError
from pi_facegate.vision.litert import interpreter_class
from pi_facegate.vision.manifest import Manifest

#: operators that do multiply-accumulate work and hold the parameters (weights and biases)
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class LayerCost:
    """One weighted operator: its kind, parameter count and MACs per inference."""

    op: str
    params: int
    macs: int


@dataclass(frozen=True)
class ModelCost:
    """What one inference of a ``.tflite`` model costs, counted from the file.

    ``params`` counts the weights and biases of the weighted operators (:data:`WEIGHTED_OPS`),
    ``param_bytes`` what they take in the file (int8, float16 or float32 storage), ``macs``
    the multiply-accumulates of one inference (batch 1); other operators (adds, pools,
    activations) do comparatively little work and are not counted.
    """

    file: str
    file_bytes: int
    params: int
    param_bytes: int
    macs: int
    ops: dict[str, int]
    layers: tuple[LayerCost, ...] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "file_bytes": self.file_bytes,
            "params": self.params,
            "param_bytes": self.param_bytes,
            "macs": self.macs,
            "ops": self.ops,
        }


def model_cost(model: Path | Manifest) -> ModelCost:
    """Count parameters and MACs of a TFLite model with the interpreter alone.

    The interpreter is built without its default delegate (XNNPACK would fold the graph
    into one opaque node) and only read: ``_get_ops_details()`` lists the operators with
    their tensor indices, ``get_tensor_details()`` gives every tensor's shape and type.
    A weight is a tensor no operator produces (and not a graph input), or the output of a
    DEQUANTIZE of one (float16 weights are stored that way).
    """
    path = model.model_path if isinstance(model, Manifest) else Path(model)
    interpreter = _plain_interpreter(path)
    ops = interpreter._get_ops_details()
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    batch = max(1, int(interpreter.get_input_details()[0]["shape"][0]))
    produced = {int(i): op for op in ops for i in op["outputs"] if i >= 0}

    def storage(index: int) -> tuple[bool, int]:
        """(is a constant, bytes it takes in the file)."""
        op = produced.get(index)
        if op is None:
            tensor = tensors[index]
            size = int(np.prod(tensor["shape"])) * np.dtype(tensor["dtype"]).itemsize
            return index not in inputs, size
        if op["op_name"] == "DEQUANTIZE":
            return storage(int(op["inputs"][0]))
        return False, 0

    layers, counted, param_bytes = [], set(), 0
    for op in ops:
        name = op["op_name"]
        if name not in WEIGHTED_OPS:
            continue
        params = 0
        for index in (int(i) for i in op["inputs"][1:] if i >= 0):
            constant, size = storage(index)
            if constant and index not in counted:
                counted.add(index)
                params += int(np.prod(tensors[index]["shape"]))
                param_bytes += size
        shapes = [tuple(int(v) for v in tensors[int(i)]["shape"]) for i in op["inputs"][:2]]
        out_shape = tuple(int(v) for v in tensors[int(op["outputs"][0])]["shape"])
        layers.append(LayerCost(name, params, _macs(name, shapes[1], out_shape) // batch))
    return ModelCost(
        file=path.name,
        file_bytes=path.stat().st_size,
        params=sum(layer.params for layer in layers),
        param_bytes=param_bytes,
        macs=sum(layer.macs for layer in layers),
        ops=dict(Counter(op["op_name"] for op in ops)),
        layers=tuple(layers),
    )


def _macs(op: str, weights: tuple[int, ...], output: tuple[int, ...]) -> int:
    """Multiply-accumulates of one weighted operator from its weight and output shapes.

    CONV_2D weights are ``(out, kh, kw, in)``: every output value takes ``kh*kw*in``.
    DEPTHWISE_CONV_2D weights are ``(1, kh, kw, channels)``: every output value takes
    ``kh*kw``. FULLY_CONNECTED weights are ``(out, in)``: every output value takes ``in``.
    """
    outputs = int(np.prod(output))
    if op == "CONV_2D":
        return outputs * int(np.prod(weights[1:]))
    if op == "DEPTHWISE_CONV_2D":
        return outputs * weights[1] * weights[2]
    return outputs * weights[-1]


def _plain_interpreter(path: Path) -> Any:
    """An allocated interpreter without default delegates, for reading the graph."""
    cls = interpreter_class()
    module = sys.modules[cls.__module__]
    resolver = getattr(
        getattr(module, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None
    )
    kwargs = {"experimental_op_resolver_type": resolver} if resolver is not None else {}
    try:
        interpreter = cls(model_path=str(path), **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read TFLite model {path}: {exc}") from exc
    return interpreter

"""Load a TFLite model with the best runtime installed.

``ai-edge-litert`` is the maintained TFLite runtime (wheels for Python 3.11 and 3.13 on
arm64); ``tflite-runtime`` stopped at 2.14 (Python <= 3.11, numpy 1 only) but is still what
some Pi images carry, so it is the fallback. Both give the same ``Interpreter`` API, and both
apply XNNPACK by default to float and INT8 graphs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pi_facegate.exc import ModelError

log = logging.getLogger("pi_facegate.litert")  # journal name: stable across moves


def interpreter_class() -> type:
    """The ``Interpreter`` class of ai_edge_litert, else tflite_runtime; ModelError if none."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                "no TFLite runtime: install ai-edge-litert (or tflite-runtime on Python 3.11)"
            ) from exc
    return Interpreter


def make_interpreter(model_path: Path, num_threads: int = 2) -> Any:
    """An allocated interpreter for ``model_path`` running on ``num_threads`` CPU threads."""
    cls = interpreter_class()
    try:
        interpreter = cls(model_path=str(model_path), num_threads=max(1, int(num_threads)))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load TFLite model {model_path}: {exc}") from exc
    log.debug("loaded %s with %s (%d threads)", model_path.name, cls.__module__, num_threads)
    return interpreter

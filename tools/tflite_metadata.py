"""Write TFLite model metadata without tflite-support.

MediaPipe Tasks refuse a float model unless its input tensor carries ``NormalizationOptions``
metadata, and the usual writers are unusable here: tflite-support is unmaintained and does not
install on current Pythons, and mediapipe's own ``metadata_writers`` fail to import (they need a
native ``_pywrap_metadata_version`` the wheel does not ship). The metadata is only a flatbuffer,
though, so this module builds it with the ``flatbuffers`` package and the generated schema
modules mediapipe does ship, then attaches it the way tflite-support's ``MetadataPopulator``
does: a new model buffer holding the metadata, named by a ``Model.metadata`` entry
``"TFLITE_METADATA"``, and ``min_parser_version`` set to the oldest metadata parser that can
read it.

The result is deterministic: the same model and metadata always give the same bytes.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry parsers look for
METADATA_IDENTIFIER = b"M001"  # file identifier of a ModelMetadata flatbuffer
MODEL_IDENTIFIER = b"TFL3"  # file identifier of a TFLite model flatbuffer
BUFFER_ALIGNMENT = 16  # the TFLite converter aligns constant data to 16 bytes; keep it so


@cache
def _schema_module(name: str) -> ModuleType:
    """One of the flatbuffers modules mediapipe generates from the TFLite schemas.

    They are loaded from their files rather than imported as ``mediapipe.tasks.metadata.*``
    because importing the ``mediapipe`` package runs its ``__init__``, which loads the native
    library and TensorFlow: slow, and fatal (SIGILL) on a CPU mediapipe was not built for.
    The generated modules themselves need only ``flatbuffers`` and ``numpy``.
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("mediapipe is not installed: it provides the TFLite schema modules")
    path = Path(list(spec.submodule_search_locations)[0]) / "tasks" / "metadata" / f"{name}.py"
    module_name = f"_facegate_tflite_{name}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None or not path.is_file():
        raise ImportError(f"mediapipe does not ship {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module


def metadata_schema() -> ModuleType:
    """The generated module for ``metadata_schema.fbs`` (ModelMetadataT, TensorMetadataT...)."""
    return _schema_module("metadata_schema_py_generated")


def model_schema() -> ModuleType:
    """The generated module for the TFLite model schema (ModelT, BufferT, MetadataT...)."""
    return _schema_module("schema_py_generated")


# --- building the metadata -------------------------------------------------------------


def image_input(
    name: str,
    description: str,
    mean: float,
    std: float,
    color_space: str = "RGB",
) -> Any:
    """TensorMetadataT of an image input normalised as ``(pixel - mean) / std``.

    This is what MediaPipe's image preprocessing reads: ImageProperties (colour space) and
    one NormalizationOptions process unit; the stats give the resulting value range.
    """
    fb = metadata_schema()
    props = fb.ImagePropertiesT()
    props.colorSpace = getattr(fb.ColorSpaceType, color_space)
    content = fb.ContentT()
    content.contentPropertiesType = fb.ContentProperties.ImageProperties
    content.contentProperties = props
    norm = fb.NormalizationOptionsT()
    norm.mean = [float(mean)]
    norm.std = [float(std)]
    unit = fb.ProcessUnitT()
    unit.optionsType = fb.ProcessUnitOptions.NormalizationOptions
    unit.options = norm
    stats = fb.StatsT()
    stats.max = [float((255.0 - mean) / std)]
    stats.min = [float((0.0 - mean) / std)]
    tensor = fb.TensorMetadataT()
    tensor.name = name
    tensor.description = description
    tensor.content = content
    tensor.processUnits = [unit]
    tensor.stats = stats
    return tensor


def feature_output(name: str, description: str) -> Any:
    """TensorMetadataT of a plain feature (raw model output decoded outside the model)."""
    fb = metadata_schema()
    content = fb.ContentT()
    content.contentPropertiesType = fb.ContentProperties.FeatureProperties
    content.contentProperties = fb.FeaturePropertiesT()
    tensor = fb.TensorMetadataT()
    tensor.name = name
    tensor.description = description
    tensor.content = content
    return tensor


def model_metadata(
    *,
    name: str,
    description: str,
    version: str,
    author: str,
    license: str,
    inputs: list[Any],
    outputs: list[Any],
) -> Any:
    """ModelMetadataT for a single-subgraph model; tensors in the model's own I/O order."""
    fb = metadata_schema()
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = list(inputs)
    subgraph.outputTensorMetadata = list(outputs)
    meta = fb.ModelMetadataT()
    meta.name = name
    meta.description = description
    meta.version = version
    meta.author = author
    meta.license = license
    meta.subgraphMetadata = [subgraph]
    return meta


# Schema members added after metadata 1.0.0, as metadata_version.cc in mediapipe/tflite-support
# lists them. Only what a detector or embedder could use is checked in detail; anything newer
# is refused rather than silently stamped with a too-old version.
_V_INPUT_PROCESS_UNITS = (1, 1, 0)
_V_TENSOR_GROUPS = (1, 2, 0)
_V_AUDIO = (1, 3, 0)
_V_FILE_VERSION = (1, 4, 1)
_V_CUSTOM_METADATA = (1, 5, 0)


def min_parser_version(meta: Any) -> str:
    """The oldest metadata parser version that can read ``meta`` (a ModelMetadataT)."""
    fb = metadata_schema()
    found = [(1, 0, 0)]

    def check_files(files: list[Any] | None) -> None:
        for item in files or []:
            if item.type not in (fb.AssociatedFileType.UNKNOWN, fb.AssociatedFileType.DESCRIPTIONS):
                raise ValueError("associated files other than descriptions are not supported")
            if item.version is not None:
                found.append(_V_FILE_VERSION)

    def check_units(units: list[Any] | None) -> None:
        for unit in units or []:
            if unit.optionsType > fb.ProcessUnitOptions.ScoreThresholdingOptions:
                raise ValueError("tokenizer process units are not supported")

    def check_tensor(tensor: Any) -> None:
        check_files(tensor.associatedFiles)
        check_units(tensor.processUnits)
        content = tensor.content
        if (
            content is not None
            and content.contentPropertiesType == fb.ContentProperties.AudioProperties
        ):
            found.append(_V_AUDIO)

    check_files(meta.associatedFiles)
    for sub in meta.subgraphMetadata or []:
        for tensor in (sub.inputTensorMetadata or []) + (sub.outputTensorMetadata or []):
            check_tensor(tensor)
        check_files(sub.associatedFiles)
        for units in (sub.inputProcessUnits, sub.outputProcessUnits):
            if units is not None:
                found.append(_V_INPUT_PROCESS_UNITS)
                check_units(units)
        if sub.inputTensorGroups is not None or sub.outputTensorGroups is not None:
            found.append(_V_TENSOR_GROUPS)
        if sub.customMetadata is not None:
            found.append(_V_CUSTOM_METADATA)
    return ".".join(str(part) for part in max(found))


def pack_metadata(meta: Any) -> bytes:
    """Serialise a ModelMetadataT (stamped with its min parser version) as an M001 buffer."""
    meta.minParserVersion = min_parser_version(meta)
    builder = flatbuffers.Builder(1024)
    builder.Finish(meta.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


# --- attaching it to a model ---------------------------------------------------------------


def _aligned_buffer_class() -> type:
    """A BufferT whose data vector starts on a 16-byte boundary, like the converter's."""
    schema = model_schema()

    class AlignedBufferT(schema.BufferT):  # type: ignore[name-defined,misc]
        def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - flatbuffers API
            data = None
            if self.data is not None and len(self.data):
                array = np.ascontiguousarray(np.asarray(self.data, dtype=np.uint8))
                builder.StartVector(1, array.size, BUFFER_ALIGNMENT)
                builder.head = builder.head - array.size
                builder.Bytes[builder.head : builder.head + array.size] = array.tobytes()
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            if self.offset:
                schema.BufferAddOffset(builder, self.offset)
            if self.size:
                schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    return AlignedBufferT


def populate(model: bytes, metadata: bytes) -> bytes:
    """``model`` with ``metadata`` (an M001 buffer) attached as its TFLITE_METADATA.

    An existing TFLITE_METADATA entry is replaced, so populating twice gives the same
    result as populating once.
    """
    schema = model_schema()
    if not schema.Model.ModelBufferHasIdentifier(model, 0):
        raise ValueError("not a TFLite model (no TFL3 file identifier)")
    if not metadata_schema().ModelMetadata.ModelMetadataBufferHasIdentifier(metadata, 0):
        raise ValueError("not a metadata buffer (no M001 file identifier)")
    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    aligned = _aligned_buffer_class()
    buffers = []
    for old in tree.buffers or []:
        new = aligned()
        new.data, new.offset, new.size = old.data, old.offset, old.size
        buffers.append(new)
    tree.buffers = buffers
    entry = next((m for m in tree.metadata or [] if _text(m.name) == METADATA_NAME), None)
    holder = aligned()
    holder.data = np.frombuffer(metadata, dtype=np.uint8)
    if entry is not None:
        tree.buffers[entry.buffer] = holder
    else:
        tree.buffers.append(holder)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(tree.buffers) - 1
        tree.metadata = [*(tree.metadata or []), entry]
    builder = flatbuffers.Builder(len(model) + len(metadata) + 4096)
    builder.Finish(tree.Pack(builder), MODEL_IDENTIFIER)
    return bytes(builder.Output())


def read_metadata(model: bytes) -> Any | None:
    """The ModelMetadataT attached to ``model``, or None if it has none."""
    schema = model_schema()
    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if _text(entry.Name()) == METADATA_NAME:
            data = root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            fb = metadata_schema()
            return fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(data, 0))
    return None


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value

"""TFLite metadata, written without tflite-support (it pins protobuf < 4, which TensorFlow 2.21
cannot use): the ``TFLITE_METADATA`` flatbuffer of LiteRT's metadata schema (file identifier
``M001``), the label file packed as a zip appended to the model (as the metadata populator does),
and the graph's input/output tensors renamed to their signature names, so that consumers match
outputs by name (``location``, ``category``, ``score``, ``number of detections``), never by index.

The field slots below follow ``metadata_schema.fbs`` (schema 1.1.0); a union takes two slots,
its type and its value."""
from __future__ import annotations

import io
import zipfile
from typing import Optional, Sequence

import flatbuffers

from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD

METADATA_NAME = "TFLITE_METADATA"
LABELS_FILE = "labels.txt"
_IDENTIFIER = b"M001"
_TENSOR_VALUE_LABELS = 3
_IMAGE_PROPERTIES, _BOUNDING_BOX_PROPERTIES, _FEATURE_PROPERTIES = 2, 3, 1
_NORMALIZATION_OPTIONS, _SCORE_THRESHOLDING_OPTIONS = 1, 3  # ProcessUnitOptions
_RGB, _BOUNDARIES, _RATIO = 1, 1, 0

OUTPUT_DESCRIPTIONS = {
    "location": "boxes [1, N, 4] as (ymin, xmin, ymax, xmax), fractions of the square, zero-padded model input",
    "category": "class index [1, N] into labels.txt (float)",
    "score": "score [1, N] in [0, 1]",
    "number of detections": "valid rows of the other outputs [1]",
    "classes": "class logits [1, A, K] over the anchors (apply sigmoid)",
    "boxes": "box codes [1, A, 4] (ty, tx, th, tw) against the anchors",
}


def _table(builder, fields: list):
    """A table from ``(slot, kind, value)``: kind is "offset", "byte", "uint", "float" or "int"."""
    builder.StartObject(max(slot for slot, _, _ in fields) + 1 if fields else 0)
    for slot, kind, value in fields:
        if value is None:
            continue
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "byte":
            builder.PrependUint8Slot(slot, value, 255)  # a default no value equals: always written
        elif kind == "uint":
            builder.PrependUint32Slot(slot, value, 0)
        elif kind == "int":
            builder.PrependInt32Slot(slot, value, 0)
        elif kind == "float":
            builder.PrependFloat32Slot(slot, value, 0.0)
    return builder.EndObject()


def _vector(builder, offsets: Sequence[int]):
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder, values: Sequence[float]):
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector()


def _uints(builder, values: Sequence[int]):
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependUint32(value)
    return builder.EndVector()


def _tensor(builder, name: str, description: str, content=None, process_units=None, files=None):
    name_offset, description_offset = builder.CreateString(name), builder.CreateString(description)
    return _table(builder, [(0, "offset", name_offset), (1, "offset", description_offset),
                            (3, "offset", content), (4, "offset", process_units), (6, "offset", files)])


def input_description(image_size: int, resize: str = "letterbox", mean: float = PIXEL_MEAN,
                      std: float = PIXEL_STD) -> str:
    """The input tensor's description; it says how the image must be fitted to the square, and
    :func:`resize_of` reads that back."""
    fitted = (f"stretched to {image_size}x{image_size}" if resize == "stretch" else
              f"long side resized to {image_size}, zero-padded bottom/right to a square")
    return f"RGB image, {fitted}, (pixel - {mean:g}) / {std:g}"


def resize_of(metadata: dict) -> Optional[str]:
    """"letterbox" or "stretch" from a file's input description (None when it does not say)."""
    text = metadata.get("input_description") or ""
    return "stretch" if "stretched to" in text else "letterbox" if "long side resized" in text else None


def build_metadata(model_name: str, description: str, image_size: int, output_names: Sequence[str],
                   mean: float = PIXEL_MEAN, std: float = PIXEL_STD, version: str = "",
                   resize: str = "letterbox", score_threshold: Optional[float] = None) -> bytes:
    """The metadata flatbuffer of a detector with one ``[1, S, S, 3]`` RGB input. With
    ``score_threshold``, the ``score`` output carries it as ``ScoreThresholdingOptions`` (what
    MediaPipe Tasks and the Task Library apply when the app sets no threshold of its own)."""
    builder = flatbuffers.Builder(1024)
    # input: an RGB image, normalised (x - mean) / std
    size = _table(builder, [(0, "uint", image_size), (1, "uint", image_size)])
    image = _table(builder, [(0, "byte", _RGB), (1, "offset", size)])
    image_content = _table(builder, [(0, "byte", _IMAGE_PROPERTIES), (1, "offset", image)])
    normalization = _table(builder, [(0, "offset", _floats(builder, [mean])), (1, "offset", _floats(builder, [std]))])
    unit = _table(builder, [(0, "byte", _NORMALIZATION_OPTIONS), (1, "offset", normalization)])
    inputs = [_tensor(builder, "image", input_description(image_size, resize, mean, std), image_content,
                      _vector(builder, [unit]))]
    outputs = []
    for name in output_names:
        content, files = None, None
        if name == "location":
            boxes = _table(builder, [(0, "offset", _uints(builder, [1, 0, 3, 2])), (1, "byte", _BOUNDARIES),
                                     (2, "byte", _RATIO)])
            value_range = _table(builder, [(0, "int", 2), (1, "int", 2)])
            content = _table(builder, [(0, "byte", _BOUNDING_BOX_PROPERTIES), (1, "offset", boxes),
                                       (2, "offset", value_range)])
        else:
            feature = _table(builder, [])
            content = _table(builder, [(0, "byte", _FEATURE_PROPERTIES), (1, "offset", feature)])
        if name == "category":
            label_name, label_description = builder.CreateString(LABELS_FILE), builder.CreateString(
                "class names, one a line, in class index order")
            files = _vector(builder, [_table(builder, [(0, "offset", label_name), (1, "offset", label_description),
                                                       (2, "byte", _TENSOR_VALUE_LABELS)])])
        units = None
        if name == "score" and score_threshold is not None:
            thresholding = _table(builder, [(0, "float", float(score_threshold))])
            units = _vector(builder, [_table(builder, [(0, "byte", _SCORE_THRESHOLDING_OPTIONS),
                                                       (1, "offset", thresholding)])])
        outputs.append(_tensor(builder, name, OUTPUT_DESCRIPTIONS.get(name, name), content, units, files))
    subgraph = _table(builder, [(2, "offset", _vector(builder, inputs)), (3, "offset", _vector(builder, outputs))])
    strings = [builder.CreateString(text) for text in (model_name, description, version, "1.0.1")]
    root = _table(builder, [(0, "offset", strings[0]), (1, "offset", strings[1]), (2, "offset", strings[2]),
                            (3, "offset", _vector(builder, [subgraph])), (7, "offset", strings[3])])
    builder.Finish(root, file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can record


def attach_metadata(flatbuffer: bytes, model_name: str, description: str, labels: Sequence[str],
                    version: str = "", resize: str = "letterbox", score_threshold: Optional[float] = None) -> bytes:
    """``flatbuffer`` with its tensors named after the signature, the metadata entry and the labels."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(flatbuffer)
    subgraph = model.subgraphs[0]
    signature = model.signatureDefs[0]
    for tensor_map in list(signature.inputs) + list(signature.outputs):  # names for Interpreter.getOutputIndex
        subgraph.tensors[tensor_map.tensorIndex].name = tensor_map.name
    by_index = {m.tensorIndex: _text(m.name) for m in signature.outputs}
    output_names = [by_index[i] for i in subgraph.outputs]
    image_size = int(subgraph.tensors[subgraph.inputs[0]].shape[1])
    buffer = schema.BufferT()
    buffer.data = list(build_metadata(model_name, description, image_size, output_names, version=version,
                                      resize=resize, score_threshold=score_threshold))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) != METADATA_NAME] + [entry]
    packed = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    with zipfile.ZipFile(packed, "a") as archive:  # appended after the flatbuffer, as the populator does
        # a fixed time stamp: the same model and labels give the same bytes, whenever they are exported
        entry = zipfile.ZipInfo(LABELS_FILE, date_time=ZIP_DATE_TIME)
        archive.writestr(entry, "".join(label + "\n" for label in labels))
    return packed.getvalue()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- reading it back (tests, `android-assets`) ---------------------------------------------------
def _field(table, slot: int) -> Optional[int]:
    offset = table.Offset(4 + 2 * slot)
    return offset or None


def _string(table, slot: int) -> Optional[str]:
    offset = _field(table, slot)
    return table.String(table.Pos + offset).decode() if offset else None


def _scalar(table, slot: int, flags, default):
    """A scalar field; an absent one has the schema's default (writers may leave defaults out)."""
    offset = _field(table, slot)
    return table.Get(flags, table.Pos + offset) if offset else default


def _subtable(table, slot: int):
    offset = _field(table, slot)
    if not offset:
        return None
    return flatbuffers.table.Table(table.Bytes, table.Indirect(table.Pos + offset))


def _tables(table, slot: int) -> list:
    offset = _field(table, slot)
    if not offset:
        return []
    start, count = table.Vector(offset), table.VectorLen(offset)
    return [flatbuffers.table.Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(count)]


def _float_vector(table, slot: int) -> list:
    offset = _field(table, slot)
    if not offset:
        return []
    start = table.Vector(offset)
    return [table.Get(flatbuffers.number_types.Float32Flags, start + 4 * i) for i in range(table.VectorLen(offset))]


def read_metadata(tflite: bytes) -> dict:
    """Name, description, input normalisation, output names and labels of a file with metadata."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(tflite)
    entries = {_text(m.name): m.buffer for m in (model.metadata or [])}
    if METADATA_NAME not in entries:
        raise ValueError("the file has no TFLite metadata")
    data = bytes(bytearray(model.buffers[entries[METADATA_NAME]].data))
    if data[4:8] != _IDENTIFIER:
        raise ValueError(f"metadata file identifier is {data[4:8]!r}, expected {_IDENTIFIER!r}")
    root = flatbuffers.table.Table(bytearray(data), flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    subgraph = _tables(root, 3)[0]
    image = _tables(subgraph, 2)[0]
    normalization = _subtable(_tables(image, 4)[0], 1)
    outputs = [_string(t, 0) for t in _tables(subgraph, 3)]
    score_threshold = None
    for tensor in _tables(subgraph, 3):
        for unit in _tables(tensor, 4):
            if _scalar(unit, 0, flatbuffers.number_types.Uint8Flags, 0) == _SCORE_THRESHOLDING_OPTIONS:
                score_threshold = _scalar(_subtable(unit, 1), 0, flatbuffers.number_types.Float32Flags, 0.0)
    with zipfile.ZipFile(io.BytesIO(tflite)) as archive:
        labels = archive.read(LABELS_FILE).decode().splitlines()
    tensor_names = {_text(t.name) for t in model.subgraphs[0].tensors}
    return {"name": _string(root, 0), "description": _string(root, 1), "input": _string(image, 0),
            "input_description": _string(image, 1),
            "mean": _float_vector(normalization, 0), "std": _float_vector(normalization, 1),
            "outputs": outputs, "labels": labels, "outputs_are_tensor_names": set(outputs) <= tensor_names,
            "score_threshold": score_threshold}

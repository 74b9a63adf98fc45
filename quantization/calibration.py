"""Post-training int8 calibration: which activation ranges the int8 file of a *float* run gets
(a QAT run brings the ranges it learned).

Two methods:

* ``median`` (the default): a quantization-aware copy of the model, its BN layers frozen, whose
  every quantizer range is set to the median of the batch ranges over the calibration images
  (:func:`~mobile_spinenet.quantization.qat.calibrate_ranges`, batches of 8); it is converted as a
  QAT model is, and no weight changes. One batch with an outlier does not stretch a range.
* ``minmax``: the TFLite converter's own calibration (a representative dataset, one image at a
  time), whose ranges are the union of everything seen: an outlier stretches a range for every
  image, so more calibration images made the file worse (docs/quantization.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

METHODS = ("median", "minmax")
DEFAULT_IMAGES = {"median": 256, "minmax": 100}
MEDIAN_BATCH_SIZE = 8  # the median is taken over the ranges of batches of this many images

# ``(batch_size, count) -> [B, S, S, 3]`` float batches of ``count`` calibration images (:func:`calibration_order`)
ImageBatches = Callable[[int, int], Iterable[np.ndarray]]


@dataclass(frozen=True)
class CalibrationOptions:
    """How a float run's int8 file is calibrated."""

    data: Optional[str] = None  # default: the run's training data (sources.json)
    images: Optional[int] = None  # default: DEFAULT_IMAGES[method]
    method: str = "median"
    seed: int = 0  # which images (spread over the set) and in which order
    float_layers: tuple = ()  # layer-name patterns kept float (median only; qat.float_layer_names)

    def validate(self) -> "CalibrationOptions":
        if self.method not in METHODS:
            raise ValueError(f"--calib-method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.float_layers and self.method != "median":
            raise ValueError(f"--float-layers needs --calib-method median (the converter's {self.method} "
                             f"calibration quantizes every layer)")
        if self.images is not None and self.images < 1:
            raise ValueError(f"--calib-steps must be at least 1, got {self.images}")
        return self

    @property
    def image_count(self) -> int:
        return self.images or DEFAULT_IMAGES[self.method]

    @property
    def step_name(self) -> str:
        """What the calibration step before conversion does, for its timer: minmax only builds
        the model there, the converter takes its ranges while it converts."""
        if self.method == "minmax":
            return "preparing the minmax calibration (the converter takes the ranges)"
        return "calibrating int8 ranges (median)"


@dataclass
class Calibrated:
    """What the converter is given for a float run's int8 file."""

    model: object  # the Keras model converted: quantizable (minmax) or quantization-aware (median)
    representative: Optional[Callable[[], Iterable[np.ndarray]]]  # minmax: the converter's images
    quantization_aware: bool
    options: CalibrationOptions
    batch_sizes: list  # of the calibration batches seen so far (minmax: filled during conversion)

    def record(self) -> dict:
        """For the export report: the method and the images its ranges come from."""
        return {"method": self.options.method, "images": sum(self.batch_sizes), "batches": len(self.batch_sizes),
                "seed": self.options.seed, "float_layers": list(self.options.float_layers)}


def calibration_order(size: int, count: int, seed: int = 0) -> np.ndarray:
    """Which ``count`` of ``size`` images calibrate, in which order: spread evenly over the set
    (from an offset that ``seed`` chooses when there are more images than ``count``), in a fixed
    shuffled order. A set sorted by class (class folders are) made every batch hold one
    class; the median of those batch ranges fit the middle class's activations and clipped the
    others' (a 3-class classifier's int8 file lost 33 points of top-1)."""
    from mobile_spinenet.data.pipeline import spread_indices

    rng = np.random.default_rng(seed)
    chosen = spread_indices(size, count)
    if len(chosen) > 1 and len(chosen) < size:  # another seed, other images: shift by part of the spacing
        spacing = (size - 1) / (len(chosen) - 1)
        chosen = np.minimum(chosen + int(rng.integers(0, max(1, int(spacing)))), size - 1)
    return rng.permutation(np.unique(chosen))


def detection_batches(dataset, image_size: int, resize: str, show_progress: bool = True, seed: int = 0) -> ImageBatches:
    """Calibration batches of a detection dataset (no augmentation)."""
    from mobile_spinenet.data.pipeline import eval_dataset
    from mobile_spinenet.progress import counted

    def batches(batch_size: int, count: int):
        records = [dataset.records[i] for i in calibration_order(len(dataset.records), count, seed)]
        for images, _, _ in counted(eval_dataset(dataset, image_size, batch_size, records, resize),
                                    "calibrating int8 ranges", total=-(-len(records) // batch_size), unit="batch",
                                    enabled=show_progress):
            yield images.numpy()

    return batches


def class_folder_batches(dataset, image_size: int, resize: str, seed: int = 0) -> ImageBatches:
    """Calibration batches of a class-folder dataset (no augmentation)."""
    from mobile_spinenet.data.pipeline import classification_eval_dataset
    from mobile_spinenet.progress import counted

    def batches(batch_size: int, count: int):
        chosen = calibration_order(len(dataset), count, seed)
        for images, _ in counted(classification_eval_dataset(dataset, image_size, batch_size, resize, indices=chosen),
                                 "calibrating int8 ranges", total=-(-len(chosen) // batch_size), unit="batch"):
            yield images.numpy()

    return batches


def calibrate_for_int8(run, float_model, options: CalibrationOptions, image_batches: ImageBatches) -> Calibrated:
    """The model (and images) the converter takes for the int8 file of float ``run``, whose
    trained Keras model is ``float_model``, calibrated as ``options`` say."""
    from mobile_spinenet.quantization.qat import calibrate_ranges, quantizable_model, quantization_aware_copy

    options = options.validate()
    count, seen = options.image_count, []

    def counted_batches(batch_size: int):
        seen.clear()  # a converter that reads its images twice counts them once
        for batch in image_batches(batch_size, count):
            seen.append(len(batch))
            yield batch

    if options.method == "minmax":
        model = quantizable_model(run.config.model, float_model, **run.build_kwargs())
        return Calibrated(model, lambda: counted_batches(1), False, options, seen)
    model = quantization_aware_copy(run.config.model, float_model, freeze_bn=True, float_layers=options.float_layers,
                                    **run.build_kwargs())
    calibrate_ranges(model, counted_batches(MEDIAN_BATCH_SIZE))
    return Calibrated(model, None, True, options, seen)

"""``export_tflite``: a training run directory -> a verified ``.tflite`` file (what
``mobile-spinenet export`` does), with its labels and a JSON report beside it."""
from __future__ import annotations

import os
from dataclasses import asdict, replace
from typing import Callable, Optional

from mobile_spinenet.io_utils import write_atomically, write_json_atomically
from mobile_spinenet.registry import INSTANCE_SEGMENTATION, get_model_info

from mobile_spinenet.quantization.calibration import CalibrationOptions  # noqa: F401  (where the commands find it)
from mobile_spinenet.quantization.export import sidecar_paths, write_export  # sidecar_paths: where every command finds it
from mobile_spinenet.quantization.verify import VerifyOptions
from mobile_spinenet.training.runs import SOURCES_FILE, data_given, open_run  # noqa: F401  (the run owns them)


def _dataset(path: Optional[str], what: str, run_dir: str, label_map):
    from mobile_spinenet.data.readers import read_dataset

    return read_dataset(data_given(path, what, run_dir), label_map=label_map)


def check_export_out(out: str, force: bool = False) -> None:
    """Checked before converting (which takes minutes): ``out`` must be a file path, and neither it
    nor a sidecar (``X.json``, ``X.labels.txt``, the rejected pair) may replace a file that an
    earlier export did not write (unless ``force``)."""
    from mobile_spinenet.ownership import export_files_owned, refuse_to_replace

    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a directory; give the .tflite file to write (e.g. {os.path.join(out, 'model.tflite')})")
    paths = {**sidecar_paths(out), "out": out}
    refuse_to_replace([out, paths["labels"], paths["report"], paths["rejected"], paths["rejected_report"]],
                      export_files_owned(paths), "an earlier export", force=force)


def export_tflite(run_dir: str, out: str, export=None, calibration: Optional[CalibrationOptions] = None,
                  verification: Optional[VerifyOptions] = None, progress: Callable[[str], None] = print,
                  resize: Optional[str] = None, force: bool = False, allow_unfinished: bool = False) -> dict:
    """Convert the run in ``run_dir`` and write ``out`` (atomically) once verification passes.
    The file carries TFLite metadata (labels, input normalisation, output names; see :mod:`metadata`).

    A file that fails verification is kept as ``<out>.rejected.tflite`` for inspection, ``out``
    is left untouched, and :class:`ExportVerificationError` says why. Returns the report that is
    also written to ``<out>.json``.

    ``export`` is an :class:`~mobile_spinenet.quantization.export.ExportOptions` (default: int8 with
    the post-processing in the graph); ``calibration`` and ``verification`` default to their
    dataclasses' defaults. ``resize`` (letterbox or stretch; default: the run's) is how the app
    will fit images to the input square: it is recorded in the metadata and the report, and
    calibration and verification preprocess that way."""
    check_export_out(out, force)  # before the imports and the minutes of conversion
    from mobile_spinenet.training.runs import refuse_unfinished
    refuse_unfinished(run_dir, allow_unfinished, "export")
    from mobile_spinenet.eval.detector_eval import keras_predictor, tflite_predictor
    from mobile_spinenet.quantization.export import (ExportOptions, convert, file_clip_size, format_op_report,
                                                     op_report)
    from mobile_spinenet import __version__
    from mobile_spinenet.quantization.interpreter import load_interpreter
    from mobile_spinenet.quantization.metadata import attach_metadata
    from mobile_spinenet.quantization.calibration import calibrate_for_int8, detection_batches
    import mobile_spinenet.quantization.qat_run  # noqa: F401  (registers the "qat" and "quantizable" forms)
    from mobile_spinenet.quantization.verify import DEFAULT_MAX_AP_DROP, ExportVerificationError, verify_export
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD, check_resize
    from mobile_spinenet.zoo import anchor_settings
    from mobile_spinenet.progress import elapsed

    options = (export or ExportOptions(quant="int8")).validate()
    calibration = (calibration or CalibrationOptions()).validate()
    verification = verification or VerifyOptions()
    quant, nms, regular_nms, input_type = options.quant, options.nms, options.regular_nms, options.input_type
    run = open_run(run_dir)  # config and label map only: the model is loaded below
    if run.is_qat and quant != "int8":  # before loading anything
        raise ValueError(f"{run_dir} is a QAT run: export it with --quant int8 (export its float run for {quant})")
    if calibration.float_layers and (run.is_qat or quant != "int8"):
        raise ValueError(f"--float-layers applies to int8 from a float run (its calibration); "
                         f"{run_dir} {'is a QAT run' if run.is_qat else f'is exported as {quant}'}")
    if run.config.task == INSTANCE_SEGMENTATION:
        raise ValueError(f"{run_dir} is a Mask R-CNN run: TFLite has no builtin for its proposal NMS; export it "
                         f"with `mobile-spinenet export-savedmodel {run_dir} --out DIR` (docs/mask_rcnn.md)")
    if run.config.task == "classification":
        from mobile_spinenet.quantization.export_classifier import export_classifier
        return export_classifier(run, out, options, calibration, verification,
                                 check_resize(resize or run.config.resize), progress)
    # the run's own decoding: Model Garden's imported runs clip boxes before NMS (a raw-output file's
    # consumer is told so in the report; a float file's in-graph op is given the clipped boxes' codes);
    # verification compares the Keras model decoded as the file decodes
    options = replace(options, nms_config=replace(options.nms_config, clip_size=run.nms_config().clip_size))
    nms_config = replace(options.nms_config, clip_size=file_clip_size(options))
    model, from_qat = run.model(), run.is_qat
    val_data = (_dataset(verification.val, "--val", run_dir, run.label_map)
                if verification.enabled else None)  # before minutes of work
    model_id, size = run.config.model, run.image_size
    resize = check_resize(resize or run.config.resize)
    anchors = run.anchors()
    quant_name = f"{quant}-qat" if from_qat else quant
    calibrated = None
    if quant == "int8" and not from_qat:  # a QAT model is converted with the ranges it learned
        calib_data = _dataset(calibration.data, "--calib", run_dir, run.label_map)
        with elapsed(calibration.validate().step_name):
            batches = detection_batches(calib_data, size, resize, seed=calibration.seed)
            calibrated = calibrate_for_int8(run, model, calibration, batches)
    progress(f"converting {model_id} ({size} px, {run.num_classes} classes) to {quant_name} TFLite, nms {nms}")
    with elapsed(f"converting to {quant_name} TFLite"):
        if calibrated is None:
            flatbuffer = convert(model, anchors, options, quantization_aware=from_qat)
        else:
            flatbuffer = convert(calibrated.model, anchors, options, calibrated.representative,
                                 quantization_aware=calibrated.quantization_aware)
    flatbuffer = attach_metadata(flatbuffer, model_id, f"{model_id} {get_model_info(model_id).detector} detector, {size} px, {quant_name}, "
                                 f"mobile-spinenet {__version__}", run.label_map.names, version=__version__,
                                 resize=resize, score_threshold=options.nms_config.score_threshold if nms != "none" else None)
    report = {"model": model_id, "image_size": size, **anchor_settings(run.config), "quant": quant_name, "nms": nms, "regular_nms": regular_nms,
              "input": {"type": input_type, "range": [-1.0, 1.0], "normalization": {"mean": PIXEL_MEAN, "std": PIXEL_STD},
                        "resize": resize},
              "labels": run.label_map.names, "label_map": run.label_map.to_dict(), "ops": op_report(flatbuffer)}
    if nms == "none":
        report["postprocess"] = asdict(nms_config)
    if calibrated is not None:
        report["calibration"] = calibrated.record()
    progress(format_op_report(report["ops"]))

    paths = sidecar_paths(out)
    if verification.enabled:
        allowed = DEFAULT_MAX_AP_DROP[quant_name] if verification.max_ap_drop is None else verification.max_ap_drop
        interpreter = load_interpreter(model_content=flatbuffer, builtin_kernels=quant == "int8")
        result = verify_export(keras_predictor(model, anchors, nms_config),
                               tflite_predictor(interpreter, anchors, size, nms_config),
                               val_data, size, allowed, verification.image_count("detection"), show_progress=True,
                               require_agreement=verification.require_agreement, resize=resize)
        report["verification"] = result.to_dict()
        progress(result.summary())
        if result.problems:
            write_atomically(paths["rejected"], flatbuffer)
            write_json_atomically(paths["rejected_report"], report)
            raise ExportVerificationError(f"export of {run_dir} is broken: {'; '.join(result.problems)}. "
                                          f"{out} was not written; the file is kept as {paths['rejected']}")
    write_export(out, flatbuffer, run.label_map.names, report)
    progress(f"written: {out} ({len(flatbuffer) / 1e6:.2f} MB), {paths['labels']}, {paths['report']}")
    return report

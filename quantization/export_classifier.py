"""``export`` of a classification run: a ``.tflite`` file whose one output holds the class logits,
verified against the Keras model on val images (top-1 of both, and how often their top classes
agree), with the labels and a JSON report beside it.

The kit's TFLite metadata describes detectors (the four outputs of the post-processing op), so a
classifier file carries none; its report (``<file>.json``) records the model, input (range,
normalisation, resize) and labels, which ``eval`` and ``predict`` read."""
from __future__ import annotations

from typing import Callable

from mobile_spinenet.io_utils import write_atomically, write_json_atomically

# Largest top-1 loss (points of accuracy) a file may show against its Keras model, and the least
# share of the confidently classified images (Keras softmax top probability >= CONFIDENT) on which
# both pick the same class: near-tied logits (an untrained model) flip under int8 rounding.
CONFIDENT = 0.5
MAX_TOP1_DROP = {"fp32": 0.5, "fp16": 0.5, "dynamic": 2.0, "int8": 2.0, "int8-qat": 2.0}
MIN_TOP1_AGREEMENT = {"fp32": 0.99, "fp16": 0.99, "dynamic": 0.95, "int8": 0.9, "int8-qat": 0.9}


def _folders(path, what: str, run_dir: str, class_names):
    from mobile_spinenet.data.class_folders import read_class_folders
    from mobile_spinenet.training.runs import data_given

    return read_class_folders(data_given(path, what, run_dir), class_names=tuple(class_names))


def verify_classifier(keras_predict, tflite_predict, dataset, image_size: int, quant: str, images: int,
                      resize: str) -> dict:
    """Top-1 of the Keras model and of the file on (up to) ``images`` val images, and the share of
    the confidently classified images where both rank the same class first (None when there is
    none); ``problems`` lists what exceeds the limits."""
    import numpy as np

    from mobile_spinenet.data.pipeline import classification_eval_dataset
    from mobile_spinenet.eval.classifier_eval import softmax, top_k_correct

    keras_right = file_right = only_one_right = same = confident = total = 0
    for batch, labels in classification_eval_dataset(dataset, image_size, 16, resize, images):
        batch, labels = batch.numpy(), labels.numpy()
        ours, theirs = keras_predict(batch), tflite_predict(batch)
        keras_hits, file_hits = top_k_correct(ours, labels, 1), top_k_correct(theirs, labels, 1)
        keras_right += int(keras_hits.sum())
        file_right += int(file_hits.sum())
        only_one_right += int((keras_hits != file_hits).sum())
        sure = softmax(ours).max(-1) >= CONFIDENT
        same += int((np.argmax(ours, -1) == np.argmax(theirs, -1))[sure].sum())
        confident += int(sure.sum())
        total += len(labels)
    result = {"images": total, "keras_top1": 100 * keras_right / total, "tflite_top1": 100 * file_right / total,
              "confident_images": confident, "agreement": same / confident if confident else None,
              "max_top1_drop": MAX_TOP1_DROP[quant], "min_agreement": MIN_TOP1_AGREEMENT[quant]}
    drop = result["keras_top1"] - result["tflite_top1"]
    drop_se = paired_standard_error(keras_right - file_right, only_one_right, total)
    problems = []
    if drop > MAX_TOP1_DROP[quant]:
        problems.append(f"top-1 drops by {drop:.2f} points (Keras {result['keras_top1']:.2f}, TFLite "
                        f"{result['tflite_top1']:.2f}), more than the allowed {MAX_TOP1_DROP[quant]:g}; on these "
                        f"{total} images one standard error of the drop is {drop_se:.2f} points (more "
                        f"--verify-images make it smaller)")
    if result["agreement"] is not None and result["agreement"] < MIN_TOP1_AGREEMENT[quant]:
        problems.append(f"the top class agrees on {100 * result['agreement']:.1f}% of the {confident} confidently "
                        f"classified images, less than {100 * MIN_TOP1_AGREEMENT[quant]:.0f}%")
    return {**result, "top1_drop": drop, "top1_drop_se": drop_se, "problems": problems, "passed": not problems}


def paired_standard_error(net_difference: int, discordant: int, total: int) -> float:
    """Standard error (points) of a top-1 difference between two classifiers scored on the same
    ``total`` images: per image the difference is +1, -1 or 0, ``discordant`` images are right for
    exactly one of them and ``net_difference`` is the first's right minus the second's."""
    import math

    if total < 2:
        return float("nan")
    mean = net_difference / total
    variance = (discordant - total * mean * mean) / (total - 1)
    return 100 * math.sqrt(max(variance, 0.0) / total)


def export_classifier(run, out: str, options, calibration, verification, resize: str,
                      progress: Callable[[str], None]) -> dict:
    """What :func:`~mobile_spinenet.quantization.export_run.export_tflite` does for a
    classification run (``options.nms`` does not apply: the file outputs logits)."""
    from dataclasses import replace

    from mobile_spinenet import __version__
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD
    from mobile_spinenet.eval.classifier_eval import keras_classifier, tflite_classifier
    from mobile_spinenet.progress import elapsed
    from mobile_spinenet.quantization.calibration import calibrate_for_int8, class_folder_batches
    from mobile_spinenet.quantization.export import convert, format_op_report, op_report, sidecar_paths, write_export
    from mobile_spinenet.quantization.interpreter import load_interpreter
    from mobile_spinenet.quantization.verify import ExportVerificationError

    quant, run_dir = options.quant, run.run_dir
    names = run.label_map.names
    val = (_folders(verification.val, "--val", run_dir, names)
           if verification.enabled else None)  # before minutes of work
    model = run.model()
    quant_name = f"{quant}-qat" if run.is_qat else quant
    calibrated = None
    if quant == "int8" and not run.is_qat:  # a QAT model is converted with the ranges it learned
        calib = _folders(calibration.data, "--calib", run_dir, names)
        with elapsed(calibration.validate().step_name):
            batches = class_folder_batches(calib, run.image_size, resize, calibration.seed)
            calibrated = calibrate_for_int8(run, model, calibration, batches)
    progress(f"converting the {run.config.model} classifier ({run.image_size} px, {run.num_classes} classes) "
             f"to {quant_name} TFLite")
    with elapsed(f"converting to {quant_name} TFLite"):
        if calibrated is None:
            flatbuffer = convert(model, None, replace(options, nms="none"), quantization_aware=run.is_qat)
        else:
            flatbuffer = convert(calibrated.model, None, replace(options, nms="none"), calibrated.representative,
                                 quantization_aware=calibrated.quantization_aware)
    report = {"model": run.config.model, "task": "classification", "image_size": run.image_size, "quant": quant_name,
              "input": {"type": options.input_type, "range": [-1.0, 1.0],
                        "normalization": {"mean": PIXEL_MEAN, "std": PIXEL_STD}, "resize": resize},
              "labels": names, "label_map": run.label_map.to_dict(), "ops": op_report(flatbuffer),
              "version": __version__}
    if calibrated is not None:
        report["calibration"] = calibrated.record()
    progress(format_op_report(report["ops"]))
    paths = sidecar_paths(out)
    if verification.enabled:
        interpreter = load_interpreter(model_content=flatbuffer, builtin_kernels=quant == "int8")
        result = verify_classifier(keras_classifier(model), tflite_classifier(interpreter), val, run.image_size,
                                   quant_name, verification.image_count("classification"), resize)
        report["verification"] = result
        progress(f"verification on {result['images']} images: top-1 Keras {result['keras_top1']:.2f} / TFLite "
                 f"{result['tflite_top1']:.2f} (drop {result['top1_drop']:+.2f} +- {result['top1_drop_se']:.2f}, "
                 f"allowed {result['max_top1_drop']:g}); "
                 + (f"top class agrees on {100 * result['agreement']:.1f}% of {result['confident_images']} confident "
                    f"images\n" if result["agreement"] is not None else
                    "no confidently classified image: top-class agreement not checked\n")
                 + ("PASSED" if result["passed"] else "FAILED: " + "; ".join(result["problems"])))
        if result["problems"]:
            write_atomically(paths["rejected"], flatbuffer)
            write_json_atomically(paths["rejected_report"], report)
            raise ExportVerificationError(f"export of {run_dir} is broken: {'; '.join(result['problems'])}. "
                                          f"{out} was not written; the file is kept as {paths['rejected']}")
    write_export(out, flatbuffer, names, report)
    progress(f"written: {out} ({len(flatbuffer) / 1e6:.2f} MB), {paths['labels']}, {paths['report']}")
    return report

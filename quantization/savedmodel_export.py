"""``export_savedmodel``: a training run -> a float TensorFlow SavedModel for servers (TF Serving,
``tf.saved_model.load``), checked against the Keras model before it is put in place.

This is how Mask R-CNN runs are exported (any run can be). TFLite does not take Mask R-CNN here:
its proposal NMS (``non_max_suppression_padded``) and the final ``combined_non_max_suppression``
have no TFLite builtin (they would need the Flex delegate, which LiteRT's XNNPACK path and the
kit's Android app do not ship), and RoIAlign's data-dependent gathers over 1000 proposals leave
nothing an int8 delegate accelerates.

The SavedModel's ``serving_default`` signature takes ``images``: float32 ``[N, S, S, 3]``, RGB
scaled to [-1, 1] (``pixels / 127.5 - 1``) and fitted to the square as the run's ``resize`` says;
its outputs are the model's inference outputs (for Mask R-CNN ``boxes`` in input pixels, ``scores``,
``classes`` 0-based, ``count`` and ``masks`` [N, D, 28, 28]; for RetinaNet/SSD ``classes`` logits
and ``boxes`` codes over the anchors). ``OUT/mobile_spinenet.json`` records labels, size,
normalisation and resize, so ``mobile-spinenet eval OUT`` scores it like the run."""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from mobile_spinenet.io_utils import TEMP_PREFIX, write_json_atomically

REPORT_FILE = "mobile_spinenet.json"  # beside saved_model.pb: what eval needs to feed and label it


@dataclass(frozen=True)
class SavedModelOptions:
    verify_images: int = 50  # val images both models are scored on; 0: no check
    val: Optional[str] = None  # default: the run's val data, else its training data
    max_ap_drop: float = 0.1  # AP points (box, and mask) the SavedModel may differ by: both are float32
    min_agreement: float = 0.9  # share of the Keras model's confident detections the SavedModel must find


def is_savedmodel(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def read_report(path: str) -> dict:
    import json

    report = os.path.join(path, REPORT_FILE)
    if not os.path.isfile(report):
        raise ValueError(f"{path} is a SavedModel without {REPORT_FILE}: it was not exported by the kit, so its "
                         f"labels, input size and normalisation are unknown")
    return json.load(open(report))


def export_savedmodel(run_dir: str, out: str, options: SavedModelOptions = SavedModelOptions(),
                      progress: Callable[[str], None] = print) -> dict:
    """Write the float SavedModel of the run in ``run_dir`` to the folder ``out`` (built in a
    temp folder beside it, checked, then renamed into place; an existing ``out`` is replaced only
    when an earlier export-savedmodel wrote it, and only by a checked export). Returns the report written to ``out/mobile_spinenet.json``."""
    if os.path.exists(out) and not (is_savedmodel(out) and os.path.isfile(os.path.join(out, REPORT_FILE))):
        raise ValueError(f"--out {out} exists and was not written by an earlier export-savedmodel (no saved_model.pb "
                         f"with {REPORT_FILE}); it would be replaced: give a new folder")
    from mobile_spinenet import __version__
    from mobile_spinenet.backend import tf
    from mobile_spinenet.data.images import PIXEL_MEAN, PIXEL_STD
    from mobile_spinenet.training.runs import data_given, open_run

    run = open_run(run_dir)
    if run.is_qat:
        raise ValueError(f"{run_dir} is a QAT run; a SavedModel for servers is exported from its float run")
    if run.config.task == "classification":  # its output is one logits tensor, which neither the serving
        # signature nor the check below (boxes, AP) take
        raise ValueError(f"{run_dir} is a classifier; export-savedmodel writes detectors and Mask R-CNN. A float "
                         f"classifier file: export {run_dir} --quant fp32 --out FILE.tflite")
    data, dataset = None, None
    if options.verify_images:  # read before the save, so a missing or bad --val fails first
        from mobile_spinenet.data.readers import read_dataset
        from mobile_spinenet.registry import INSTANCE_SEGMENTATION

        data = data_given(options.val, "--val", run_dir)
        dataset = read_dataset(data, label_map=run.label_map, masks=run.config.task == INSTANCE_SEGMENTATION)
    model, size = run.model(), run.image_size

    class Serving(tf.Module):
        """The inference call alone: the module tracks the weights, not the Keras model, whose
        training-mode call (Mask R-CNN's takes ground truth) SavedModel would otherwise trace."""

        def __init__(self):
            super().__init__()
            self.weights = list(model.variables)

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
        def serve(self, images):
            return dict(model(images, training=False))

    module = Serving()
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    staging = os.path.join(folder, f"{TEMP_PREFIX}{os.path.basename(os.path.abspath(out))}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    progress(f"saving {run.config.model} ({run.config.task}, {size} px) as a SavedModel")
    try:
        tf.saved_model.save(module, staging, signatures={"serving_default": module.serve})
        report = {"format": "savedmodel", "task": run.config.task, "model": run.config.model, "image_size": size,
                  "input": {"name": "images", "type": "float32", "range": [-1.0, 1.0],
                            "normalization": {"mean": PIXEL_MEAN, "std": PIXEL_STD}, "resize": run.config.resize},
                  "labels": run.label_map.names, "label_map": run.label_map.to_dict(),
                  "version": __version__}
        if run.config.task == "detection":  # raw outputs: the consumer decodes them over these anchors, so
            from mobile_spinenet.zoo import anchor_settings
            report.update(anchor_settings(run.config))
            report["postprocess"] = asdict(run.nms_config())
        if options.verify_images:
            report["verification"] = _verify(model, staging, report, dataset, data, run, options)
            checked = report["verification"]
            progress(f"checked on {checked['images']} images: box AP {checked['bbox_AP_keras']:.2f} (Keras) vs "
                     f"{checked['bbox_AP_savedmodel']:.2f} (SavedModel), " + (
                         f"{100 * checked['agreement']:.0f}% of {checked['confident_detections']} confident "
                         f"detections found by both" if checked["confident_detections"] else
                         "no confident detection to compare (AP alone checked)"))
        write_json_atomically(os.path.join(staging, REPORT_FILE), report)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"wrote {out} (serving_default: images float32 [N, {size}, {size}, 3] in [-1, 1])")
    return report


def served_predictor(path: str, report: dict) -> Callable:
    """The SavedModel at ``path`` (with the kit's ``report``) as the kit's predictors are: for
    Mask R-CNN, images -> its outputs as NumPy (boxes, scores, classes, count, masks); for a
    detector, images -> ``(boxes, scores, classes, count)``, its raw outputs decoded over the anchors
    and with the post-processing the report records."""
    from mobile_spinenet.backend import tf
    from mobile_spinenet.registry import INSTANCE_SEGMENTATION

    served = tf.saved_model.load(path).signatures["serving_default"]

    def outputs(images):
        return {k: v.numpy() for k, v in served(images=tf.constant(images, tf.float32)).items()}

    if report["task"] == INSTANCE_SEGMENTATION:
        return outputs
    from mobile_spinenet.eval.detector_eval import detect
    from mobile_spinenet.postprocess import NMSConfig
    from mobile_spinenet.zoo import anchor_settings, model_anchors

    anchors = model_anchors(report["model"], report["image_size"], **anchor_settings(report))
    nms = NMSConfig(**report["postprocess"])

    def boxes(images):
        out = outputs(images)
        return detect(out["classes"], out["boxes"], anchors, nms)

    return boxes


def _verify(model, path: str, report: dict, dataset, data: str, run, options: SavedModelOptions) -> dict:
    """Score the Keras model and the reloaded SavedModel on the same images with pycocotools: box
    AP (and mask AP for Mask R-CNN) must agree within ``options.max_ap_drop`` points, and the
    confident detections of the one must be found by the other. Outputs are not compared number
    by number: the saved graph is optimised differently, and near-tied scores can reorder NMS.
    ``dataset``: read from ``data`` (the path the failure message names)."""
    from mobile_spinenet.quantization.verify import detection_agreement
    from mobile_spinenet.registry import INSTANCE_SEGMENTATION

    serve = served_predictor(path, report)
    size, resize, images = run.image_size, run.config.resize, options.verify_images
    if run.config.task == INSTANCE_SEGMENTATION:
        from mobile_spinenet.eval.instance_eval import evaluate_instances, mask_rcnn_predictor

        scored = [evaluate_instances(predict, dataset, size, 4, images, resize=resize)
                  for predict in (mask_rcnn_predictor(model), serve)]
        aps = {f"{kind}_AP": [100 * metrics[kind]["AP"] for metrics, _ in scored] for kind in ("bbox", "segm")}
    else:
        from mobile_spinenet.eval.detector_eval import evaluate_predictor, keras_predictor

        scored = [evaluate_predictor(predict, dataset, size, 4, images, resize=resize)
                  for predict in (keras_predictor(model, run.anchors(), run.nms_config()), serve)]
        aps = {"bbox_AP": [100 * metrics["AP"] for metrics, _ in scored]}
    count, agreement, score_error = detection_agreement(scored[0][1], scored[1][1])
    result = {"images": min(images, len(dataset)), "confident_detections": count, "agreement": agreement,
              "score_error": score_error, "max_ap_drop": options.max_ap_drop,
              **{f"{name}_keras": keras for name, (keras, _) in aps.items()},
              **{f"{name}_savedmodel": saved for name, (_, saved) in aps.items()}}
    problems = [f"{name} {saved:.2f} vs Keras {keras:.2f}" for name, (keras, saved) in aps.items()
                if abs(keras - saved) > options.max_ap_drop]
    if count and agreement < options.min_agreement:
        problems.append(f"it finds {100 * agreement:.0f}% of the Keras model's {count} confident detections")
    if problems:
        raise ValueError(f"the reloaded SavedModel does not match the Keras model on {result['images']} images of "
                         f"{data}: {'; '.join(problems)}; not written")
    return result

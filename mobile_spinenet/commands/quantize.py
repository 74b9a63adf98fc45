"""`mobile-spinenet qat` and `export`."""
from __future__ import annotations

from mobile_spinenet.quantization.verify import DEFAULT_MAX_AP_DROP, DEFAULT_VERIFY_IMAGES
from mobile_spinenet.quantization.calibration import DEFAULT_IMAGES, METHODS as CALIBRATION_METHODS
from mobile_spinenet.commands.common import (comma_list, non_negative_float, positive_float, positive_int, setup_logging,
                                             unit_interval, yolo_splits)


def _cmd_qat(args) -> int:
    from mobile_spinenet.quantization.qat_run import QatOptions, qat

    setup_logging()
    data, val = yolo_splits(args.data, args.val)
    row = qat(args.from_run, data, args.out, QatOptions(epochs=args.epochs, learning_rate=args.lr,
                                                             batch_size=args.batch, val=val, resume=args.resume,
                                                             freeze_bn=args.freeze_bn, seed=args.seed,
                                                             float_layers=tuple(args.float_layers or ()),
                                                             show_progress=not args.no_progress))
    summary = ", ".join(f"{k} {row[k]:.4f}" for k in ("loss", "val_AP", "val_AP50") if k in row)
    print(f"done: {summary}\nQAT directory: {args.out} (export it with `mobile-spinenet export {args.out} "
          f"--quant int8 --out model.tflite`)")
    return 0


def add_qat_parser(sub) -> None:
    qat = sub.add_parser(
        "qat", help="fine-tune a trained run quantization-aware (tfmot)",
        description="Rebuild a trained float run in its quantizable form (head unrolled per level), annotate it "
                    "with tensorflow-model-optimization, calibrate the quantizer ranges on a few images, and "
                    "fine-tune it with the run's recipe at a low learning rate. Same progress, checkpoints, "
                    "metrics and --resume as training.")
    qat.add_argument("--from", dest="from_run", required=True, help="the trained float run directory")
    qat.add_argument("--data", required=True, help="training set (COCO folder/JSON or VOC folder)")
    qat.add_argument("--val", help="validation set, scored after every epoch")
    qat.add_argument("--out", required=True, help="QAT directory")
    qat.add_argument("--epochs", type=positive_float, default=1.0, help="fine-tune epochs (default 1; the demo checkpoints' "
                     "QAT used 0.25, docs/quantization.md)")
    qat.add_argument("--lr", type=positive_float, help="base learning rate (default: a tenth of the float run's for SGD, a hundredth for AdamW)")
    qat.add_argument("--batch", type=positive_int, help="global batch size (default: the float run's)")
    qat.add_argument("--seed", type=int, help="data order, augmentation and initial state (default: the float run's)")
    qat.add_argument("--freeze-bn", action="store_true",
                     help="keep the float run's BN layers (statistics, scale, offset) as trained during the fine-tune")
    qat.add_argument("--float-layers", type=comma_list, metavar="PATTERNS",
                     help="layers left float in the fine-tune and the int8 file, as comma-separated shell patterns "
                          "of layer names (e.g. 'stem_block0*'): mixed precision, which keeps the AP those layers "
                          "lose to int8; time the file on the target device, where float ops may cost more than on a "
                          "desktop CPU (docs/quantization.md)")
    qat.add_argument("--resume", action="store_true", help="continue the QAT run in --out")
    qat.add_argument("--no-progress", action="store_true", help="no progress bar")
    qat.set_defaults(func=_cmd_qat)


def _cmd_export(args) -> int:
    from mobile_spinenet.quantization.export_run import CalibrationOptions, check_export_out, export_tflite
    from mobile_spinenet.quantization.verify import VerifyOptions

    check_export_out(args.out, args.force)  # before TensorFlow loads for the options below
    from mobile_spinenet.postprocess import NMSConfig
    from mobile_spinenet.quantization.export import ExportOptions

    setup_logging()
    export_tflite(args.run, args.out,
                  export=ExportOptions(quant=args.quant, nms=args.nms, nms_config=NMSConfig(max_detections=args.max_detections,
                                                                                       score_threshold=args.score_threshold),
                                       regular_nms=not args.fast_nms, input_type=args.input_type),
                  calibration=CalibrationOptions(data=args.calib, images=args.calib_steps, method=args.calib_method,
                                                 seed=args.calib_seed, float_layers=tuple(args.float_layers or ())),
                  verification=VerifyOptions(enabled=not args.no_verify, val=args.val, images=args.verify_images,
                                             max_ap_drop=args.max_ap_drop, require_agreement=args.require_agreement),
                  resize=args.resize, force=args.force, allow_unfinished=args.allow_unfinished)
    return 0


def add_export_parser(sub) -> None:
    export = sub.add_parser(
        "export", help="export a run to TFLite (fp32, fp16, dynamic, int8), verified against Keras",
        description="Convert a training run to a .tflite file with TFLite_Detection_PostProcess in the graph "
                    "(outputs location, category, score, number of detections) or raw outputs, run it next "
                    "to the Keras model on validation images, and write it only when its AP holds "
                    "(a broken file is kept as OUT.rejected.tflite and the command fails).")
    export.add_argument("run", help="training run directory")
    export.add_argument("--out", required=True, help="the .tflite file to write (labels and a JSON report beside it)")
    export.add_argument("--allow-unfinished", action="store_true",
                        help="export the latest checkpoint of a run that has not finished (refused by default)")
    export.add_argument("--force", action="store_true",
                        help="replace files at --out and beside it (X.json, X.labels.txt) that an earlier export did "
                             "not write (refused by default)")
    export.add_argument("--quant", default="int8", choices=["fp32", "fp16", "dynamic", "int8"],
                        help="int8 (default: integer weights and activations, from a QAT run or calibrated from a "
                             "float run), dynamic (int8 weights, float activations), fp16 (half-size weights) or fp32")
    export.add_argument("--calib", help="calibration images for int8 (default: the run's training data)")
    export.add_argument("--calib-steps", type=positive_int,
                        help=f"int8 from a float run: calibration images (default {DEFAULT_IMAGES['median']} for median, "
                             f"{DEFAULT_IMAGES['minmax']} for minmax)")
    export.add_argument("--calib-method", default="median", choices=list(CALIBRATION_METHODS),
                        help="int8 from a float run: median (default) sets each activation range to the median of its "
                             "ranges over batches of 8 calibration images, on a quantization-aware copy with BN frozen; "
                             "minmax is the TFLite converter's calibration (the union of all ranges seen, which one "
                             "outlier stretches; docs/quantization.md compares them)")
    export.add_argument("--calib-seed", type=int, default=0,
                        help="int8 from a float run: which calibration images (spread over the set) and their order "
                             "(default 0); other seeds show how much the file's AP depends on them")
    export.add_argument("--float-layers", type=comma_list, metavar="PATTERNS",
                        help="int8 from a float run (median calibration): layers left float, as comma-separated "
                             "shell patterns of layer names (e.g. 'stem*,block*_fuse*'): mixed precision, which "
                             "keeps the AP those layers lose to int8; time the file on the target device, where "
                             "float ops may cost more than on a desktop CPU (docs/quantization.md)")
    export.add_argument("--nms", default="tflite", choices=["tflite", "none"],
                        help="tflite (default: decoding and NMS in the file, the TFLite_Detection_PostProcess op "
                             "that MediaPipe and the Task Library read) or none (raw box and class outputs, the "
                             "network alone)")
    export.add_argument("--fast-nms", action="store_true", help="class-agnostic NMS of the op (faster on device); "
                        "default: per-class NMS, as evaluation does")
    export.add_argument("--max-detections", type=positive_int, default=100,
                        help="detections the in-graph NMS keeps (default 100, what COCO evaluation scores)")
    export.add_argument("--score-threshold", type=unit_interval, default=0.05,
                        help="the in-graph post-processing drops boxes scoring below it, and the metadata "
                             "records it for the app (default 0.05, what COCO evaluation needs; an app that shows "
                             "only confident boxes, e.g. 0.3, also saves post-processing time); verification "
                             "compares Keras and the file at this threshold")
    export.add_argument("--input-type", default="float", choices=["float", "uint8"],
                        help="int8 only: uint8 takes raw pixels")
    export.add_argument("--val", help="verification images (default: the run's val data, else its training data)")
    export.add_argument("--verify-images", type=positive_int,
                        help=f"val images the file is checked on (default {DEFAULT_VERIFY_IMAGES['detection']} for a "
                             f"detector: on a few dozen, AP is noise at the allowed drop; "
                             f"{DEFAULT_VERIFY_IMAGES['classification']} for a classifier)")
    drop = DEFAULT_MAX_AP_DROP
    export.add_argument("--max-ap-drop", type=non_negative_float, help="AP points the file may lose against Keras "
                        f"(default: {drop['fp32']:g} fp32, {drop['fp16']:g} fp16, {drop['dynamic']:g} dynamic, "
                        f"{drop['int8']:g} int8 from a float run (post-training quantization), {drop['int8-qat']:g} "
                        f"int8 from a QAT run)")
    export.add_argument("--resize", choices=["letterbox", "stretch"],
                        help="how the app fits images to the input square (default: the run's, see train --resize): "
                             "stretch for MediaPipe Tasks / the Task Library, letterbox for the kit's Android core; "
                             "recorded in the metadata, and calibration and verification preprocess that way")
    export.add_argument("--require-agreement", action="store_true",
                        help="fail a file whose detection agreement with Keras could not be checked (the Keras "
                             "model has no confident detection on the verification images), instead of passing "
                             "it on AP alone")
    export.add_argument("--no-verify", action="store_true", help="skip verification (not recommended)")
    export.set_defaults(func=_cmd_export)



def _cmd_export_savedmodel(args) -> int:
    from mobile_spinenet.quantization.savedmodel_export import SavedModelOptions, export_savedmodel

    setup_logging()
    export_savedmodel(args.run, args.out, SavedModelOptions(verify_images=args.verify_images, val=args.val))
    return 0


def add_export_savedmodel_parser(sub) -> None:
    export = sub.add_parser(
        "export-savedmodel", help="export a run as a float TensorFlow SavedModel (servers; Mask R-CNN)",
        description="Save a training run's float model as a TensorFlow SavedModel whose serving_default "
                    "signature takes images float32 [N, S, S, 3] in [-1, 1] and returns the model's inference "
                    "outputs (Mask R-CNN: boxes in input pixels, scores, classes, count, 28x28 masks). The "
                    "SavedModel is reloaded and run next to the Keras model on validation images before it is "
                    "put in place; OUT/mobile_spinenet.json records labels, size and preprocessing, so "
                    "`mobile-spinenet eval OUT` scores it. This is the export of Mask R-CNN runs: TFLite has no "
                    "builtin for their proposal NMS (see docs/mask_rcnn.md).")
    export.add_argument("run", help="training run directory (float)")
    export.add_argument("--out", required=True, help="SavedModel folder to write")
    export.add_argument("--val", help="check images (default: the run's val data, else its training data)")
    export.add_argument("--verify-images", type=int, default=50,
                        help="images the reloaded SavedModel and the Keras model are scored on (default 50; 0: no "
                             "check)")
    export.set_defaults(func=_cmd_export_savedmodel)


def _cmd_android_assets(args) -> int:
    from mobile_spinenet.quantization.android_assets import copy_to_android_assets

    for path in copy_to_android_assets(args.model, args.assets, args.name):
        print(f"written: {path}")
    print("rebuild the app (android_demo/README.md); it lists every .tflite in its assets")
    return 0


def add_android_assets_parser(sub) -> None:
    assets = sub.add_parser(
        "android-assets", help="copy an exported .tflite and its labels into the Android demo",
        description="Copy MODEL.tflite into the Android demo's assets with its labels (from the file's TFLite "
                    "metadata) and, for raw-output files (--nms none), its anchors; the app finds outputs by "
                    "tensor name.")
    assets.add_argument("model", help="a .tflite file written by `mobile-spinenet export`")
    assets.add_argument("--assets", help="assets folder (default: android_demo/app/src/main/assets of this checkout)")
    assets.add_argument("--name", help="file name in the assets (default: the model's)")
    assets.set_defaults(func=_cmd_android_assets)

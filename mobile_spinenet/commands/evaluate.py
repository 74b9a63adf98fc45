"""`mobile-spinenet benchmark`, `eval`, `predict` and `compare`."""
from __future__ import annotations

import json
import os

from mobile_spinenet.commands.common import (comma_list, finite_float, non_negative_float, non_negative_int,
                                             parse_ints, positive_int, setup_logging)
from mobile_spinenet.eval.benchmark import INTERLEAVED_ROUNDS


LABELS_HELP = ("class names, one per line (line k names class k), for a .tflite file without the kit's .json "
               "report or metadata labels (e.g. a TF Object Detection API file); eval matches them to the dataset's "
               "category names")


RESIZE_HELP = ("how images are fitted to the input square (default: the run's recipe, the file's report or "
               "metadata, else stretch, as MediaPipe and TF Object Detection API files expect)")


def _cmd_benchmark(args) -> int:
    from mobile_spinenet.eval.benchmark import benchmark, format_results

    threads = parse_ints(args.threads, "--threads")
    if args.adb is not None:
        return _benchmark_on_device(args, threads)
    for flag, value in (("--benchmark-binary", args.benchmark_binary), ("--cpu-mask", args.cpu_mask)):
        if value is not None:
            raise ValueError(f"{flag} is for benchmark --adb (a phone); the host benchmark runs ai-edge-litert")
    delegates = args.delegate
    if delegates not in (("xnnpack",), ("none",)):
        raise ValueError(f"--delegate {','.join(args.delegate)}: the host benchmark takes xnnpack or none (gpu and "
                         f"nnapi are for benchmark --adb, on a phone)")
    args.delegate = delegates[0]
    if len(args.model) > 1:
        return _compare_files(args, threads)
    if args.rounds is not None:
        raise ValueError("--rounds interleaves several files; give two or more")
    args.model = args.model[0]
    if args.profile:
        return _profile(args, threads)
    results = benchmark(args.model, threads, args.runs, args.warmup, args.delegate, args.image)
    print(json.dumps(results, indent=1) if args.json else format_results(args.model, results))
    return 0


def _benchmark_on_device(args, threads) -> int:
    import sys

    from mobile_spinenet.eval.device_benchmark import DeviceOptions, benchmark_on_device, format_device_results

    if args.profile or args.image:
        raise ValueError(f"{'--profile' if args.profile else '--image'} is for the host benchmark; benchmark --adb "
                         f"times the files with LiteRT's benchmark_model on the phone")
    measured = benchmark_on_device(
        args.model, threads, args.delegate, args.runs, args.warmup,
        args.rounds or INTERLEAVED_ROUNDS,
        DeviceOptions(serial=args.adb or None, binary=args.benchmark_binary, cpu_mask=args.cpu_mask),
        progress=lambda message: print(f"  .. {message}", file=sys.stderr, flush=True))
    print(json.dumps(measured, indent=1) if args.json else format_device_results(measured))
    return 0


def _compare_files(args, threads) -> int:
    """Several files in interleaved rounds, so that the host's drift falls on each alike."""
    from mobile_spinenet.eval.benchmark import benchmark_interleaved, check_benchmark_args, format_comparison

    if args.profile:
        raise ValueError("--profile takes one file; give the files one at a time")
    if args.delegate != "xnnpack":
        raise ValueError("several files are compared with XNNPACK, the delegate phones use; leave --delegate at xnnpack")
    if len(set(args.model)) != len(args.model):
        raise ValueError(f"a file is named twice: {' '.join(args.model)}")
    for path in args.model:
        check_benchmark_args(path, threads, args.runs, args.warmup, args.delegate)
    measured = benchmark_interleaved(args.model, threads, args.runs, args.warmup, args.rounds or INTERLEAVED_ROUNDS,
                                     args.image)
    print(json.dumps(measured, indent=1) if args.json else format_comparison(measured))
    return 0


def _profile(args, threads) -> int:
    import os
    import sys

    from mobile_spinenet.eval.op_profile import format_profile, profile

    if not os.path.isfile(args.model):
        raise ValueError(f"{args.model} does not exist")
    if args.delegate != "xnnpack":
        raise ValueError("--profile times ops with XNNPACK, the delegate phones use; leave --delegate at xnnpack")
    results = [profile(args.model, t, min(args.runs, 30), progress=lambda m: print(f"  .. {m}", file=sys.stderr,
                                                                                     flush=True))
               for t in threads]
    print(json.dumps(results, indent=1) if args.json else "\n".join(format_profile(r) for r in results))
    return 0


def add_benchmark_parser(sub) -> None:
    bench = sub.add_parser(
        "benchmark", help="latency, memory and end-to-end time of a .tflite file",
        description="Run a .tflite file in the ai-edge-litert interpreter, each thread count in its own process: "
                    "init time, first inference, median/p90/min latency, end-to-end time (decode + resize + "
                    "inference + post-processing), peak RSS and model size. On a phone, run LiteRT's "
                    "benchmark_model on the same file (docs/benchmarks.md). Several files are timed together in "
                    "interleaved rounds and compared with the first.")
    bench.add_argument("model", nargs="+",
                       help="the .tflite file; several files are timed in interleaved rounds and compared with the "
                            "first (e.g. a raw-output file first: the network alone)")
    bench.add_argument("--rounds", type=positive_int,
                       help="with several files: interleaved passes over all of them; the median round counts "
                            f"(default {INTERLEAVED_ROUNDS})")
    bench.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    bench.add_argument("--runs", type=positive_int, default=100, help="timed invocations per measurement (default 100)")
    bench.add_argument("--warmup", type=non_negative_int, default=10, help="untimed invocations first (default 10)")
    bench.add_argument("--adb", nargs="?", const="", metavar="SERIAL",
                       help="time on a connected Android device with LiteRT's benchmark_model (SERIAL: which device, "
                            "when several are connected), pinned to its fastest cores (docs/benchmarks.md)")
    bench.add_argument("--benchmark-binary", metavar="PATH",
                       help="with --adb: benchmark_model built for the phone's ABI (default: "
                            "$MOBILE_SPINENET_BENCHMARK_MODEL)")
    bench.add_argument("--cpu-mask", metavar="HEX", help="with --adb: taskset core mask (default: the cores with the "
                                                          "highest maximum frequency)")
    bench.add_argument("--delegate", default="xnnpack", type=comma_list,
                       help="xnnpack (the CPU default) or none (TFLite's built-in kernels); with --adb also gpu and "
                            "nnapi, and several comma-separated (each timed)")
    bench.add_argument("--image", help="image for the end-to-end figure (default: a demo canvas)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    bench.add_argument("--profile", action="store_true",
                       help="time every op of the file alone (a one-op model each, XNNPACK, median of --runs up to "
                            "30) and print the time per op type, per multiply-add, and the 20 slowest ops")
    bench.set_defaults(func=_cmd_benchmark)


def _cmd_eval(args) -> int:
    from mobile_spinenet.eval.coco_metrics import format_metrics
    from mobile_spinenet.eval.evaluate import evaluate_path
    from mobile_spinenet.io_utils import write_json_atomically

    setup_logging()
    from mobile_spinenet.data.readers import split_of
    from mobile_spinenet.eval.evaluate import evaluate_classifier_path, evaluate_instances_path, task_of
    from mobile_spinenet.registry import INSTANCE_SEGMENTATION

    args.data = split_of(args.data, "val")  # a YOLO data.yaml: its val: split

    task = task_of(args.model)
    if task == INSTANCE_SEGMENTATION:
        if args.labels:
            raise ValueError("--labels is for .tflite files; a Mask R-CNN run's labels come from its run")
        metrics, results = evaluate_instances_path(args.model, args.data, args.max_images, resize=args.resize,
                                                   image_size=args.image_size)
        print("box (bbox):\n" + format_metrics(metrics["bbox"]))
        print("mask (segm):\n" + format_metrics(metrics["segm"]))
        if args.json:
            write_json_atomically(args.json, results)
            print(f"detections with masks (COCO results format, RLE segmentations): {args.json}")
        return 0
    if task == "classification":
        if args.json or args.labels:
            raise ValueError("--json and --labels are for detectors; a classifier's labels come from its run or report")
        accuracy = evaluate_classifier_path(args.model, args.data, args.max_images, args.resize, args.image_size)
        print(f"top-1 {100 * accuracy['top1']:.2f}% (+- {100 * accuracy['top1_se']:.2f}, one standard error on "
              f"{accuracy['images']} images)  top-5 {100 * accuracy['top5']:.2f}%  ({accuracy['images']} images of "
              f"{args.data})")
        return 0
    metrics, detections = evaluate_path(args.model, args.data, args.max_images, labels=args.labels, resize=args.resize,
                                        image_size=args.image_size)
    print(format_metrics(metrics))
    if args.json:
        write_json_atomically(args.json, detections)
        print(f"detections (COCO results format): {args.json}")
    return 0


def add_eval_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval", help="COCO AP of a run directory or a .tflite file (pycocotools); top-1/top-5 of a classifier",
        description="Score a training run (Keras, float or QAT) or an exported .tflite file on a COCO or VOC "
                    "dataset with pycocotools: AP, AP50, AP75, APs/m/l, AR1/10/100 and per-class AP. Boxes are "
                    "mapped back to original image pixels (resize and padding undone). A Mask R-CNN run is scored "
                    "for boxes and masks (pycocotools bbox and segm) on a COCO dataset with segmentations. A "
                    "classification run, or a file exported from one, is scored by top-1 and top-5 accuracy on "
                    "class folders.")
    evaluate.add_argument("model", help="run directory or .tflite file")
    evaluate.add_argument("--data", required=True, help="COCO folder/JSON or VOC folder (a classifier: class folders)")
    evaluate.add_argument("--json", help="write the detections here (COCO results format)")
    evaluate.add_argument("--max-images", type=positive_int, help="score only the first N images")
    evaluate.add_argument("--labels", help=LABELS_HELP)
    evaluate.add_argument("--resize", choices=["letterbox", "stretch"], help=RESIZE_HELP)
    evaluate.add_argument("--image-size", type=positive_int,
                          help="score a float run's Keras model built for this input size instead of the size it "
                               "was trained at (same weights; e.g. 384 for a 256 px run): what a deployment at that "
                               "size would score. SpineNet's AP rises with the size on small objects; SSDLite's falls "
                               "away from its training size, and it warns where a 1x1 feature map would grow "
                               "(docs/training.md). Not for .tflite files, QAT or Mask "
                               "R-CNN runs")
    evaluate.set_defaults(func=_cmd_eval)


def _cmd_predict(args) -> int:
    from mobile_spinenet.eval.evaluate import task_of
    from mobile_spinenet.eval.predict import (CLASS_PREDICTIONS_FILE, DETECTIONS_FILE, classify_images,
                                              predict_images, summarize, summarize_classes)

    setup_logging()
    if task_of(args.model) == "classification":
        for result in classify_images(args.model, args.images, args.out, args.labels, args.resize, force=args.force):
            print(summarize_classes(result))
        print(f"predictions: {os.path.join(args.out, CLASS_PREDICTIONS_FILE)}")
        return 0
    results = predict_images(args.model, args.images, args.out, args.score_threshold, args.labels, args.resize,
                             force=args.force)
    for result in results:
        print(summarize(result))
    print(f"detections: {os.path.join(args.out, DETECTIONS_FILE)}")
    return 0


def add_predict_parser(sub) -> None:
    predict = sub.add_parser(
        "predict", help="draw a model's detections on images (a classifier's: its top classes)",
        description="Run a training run (Keras) or a .tflite file on image files (a folder: its images); write each image with its "
                    "boxes, labels and scores drawn (a Mask R-CNN run's masks tinted in), and detections.json "
                    "(boxes in original-image pixels; masks as COCO RLE). A classification run or classifier "
                    "file prints each image's top classes and writes them with their probabilities to "
                    "predictions.json.")
    predict.add_argument("model", help="run directory or .tflite file")
    predict.add_argument("images", nargs="+", help="image files, or folders of them (their images, sorted)")
    predict.add_argument("--out", required=True, help="output folder (never one of the images' own files)")
    predict.add_argument("--force", action="store_true",
                         help="replace files in --out that an earlier predict did not write (refused by default)")
    predict.add_argument("--score-threshold", type=non_negative_float, default=0.3,
                         help="boxes scoring below it are left out of the images and detections.json (default 0.3)")
    predict.add_argument("--labels", help=LABELS_HELP)
    predict.add_argument("--resize", choices=["letterbox", "stretch"], help=RESIZE_HELP)
    predict.set_defaults(func=_cmd_predict)



def _cmd_compare(args) -> int:
    from mobile_spinenet.eval.compare import CompareOptions, compare

    setup_logging()
    threads = parse_ints(args.threads, "--threads")
    options = CompareOptions(
        data=args.data, out=args.out, models=tuple(m for m in args.models.split(",") if m), budget_minutes=args.budget,
        val=args.val, image_size=args.image_size, recipe=args.recipe, qat_share=args.qat_share,
        qat_epochs=args.qat_epochs, threads=threads,
        bench_runs=args.runs, bench_rounds=args.rounds, extra_exports=tuple(e for e in args.extra_exports.split(",") if e),
        runs_from=args.runs_from, verify_images=args.verify_images, seed_spread=args.seed_spread,
        external=tuple(args.external or ()), show_progress=not args.no_progress)
    report = compare(options, progress=lambda message: print(message, flush=True))
    print(open(report).read())
    print(f"report: {report} (report.json, ap_vs_multiply_adds.png, ap_vs_latency.png beside it)")
    return 0


def add_compare_parser(sub) -> None:
    # --budget, --runs and --rounds are checked by CompareOptions.validate (before TensorFlow loads)
    from mobile_spinenet.eval.compare import DEFAULT_MODELS

    compare = sub.add_parser(
        "compare", help="train, QAT, export, evaluate and benchmark several models; write a report",
        description="Give every model the same recipe and the same float-training time budget, QAT-tune it, "
                    "export a verified int8 TFLite file, score Keras and TFLite AP, benchmark the file at each "
                    "thread count, and write OUT/report.md (table with the paper's Table 9 as reference rows, "
                    "SpineNet vs MobileNetV3-SSDLite latency per multiply-add, plots of AP vs multiply-adds and AP "
                    "vs latency). Finished stages are recorded in OUT/results/; rerun the command to resume.")
    compare.add_argument("--data", required=True, help="a folder with train/ and val/ (e.g. `data demo` output), "
                         "or the training set when --val is given")
    compare.add_argument("--val", help="validation set (default: DATA/val)")
    compare.add_argument("--models", default=",".join(DEFAULT_MODELS),
                         help="comma-separated entries: a model id, ID@SIZE (the id at that input size: one more "
                              "point of its family's AP-latency curve), or a finished run folder in --runs-from")
    compare.add_argument("--budget", type=finite_float, default=5.0, help="minutes of float training per model (default 5)")
    compare.add_argument("--out", required=True, help="report folder (runs/, exports/, results/, report.md)")
    compare.add_argument("--image-size", type=positive_int,
                         help="input size of the models it trains (default 256); runs reused with --runs-from keep "
                              "the size they were trained at, and a different --image-size is refused")
    compare.add_argument("--recipe", default="cpu_demo", help="training recipe (bundled name or YAML file)")
    compare.add_argument("--qat-share", type=non_negative_float, default=0.125, help="QAT epochs as a share of the float epochs")
    compare.add_argument("--qat-epochs", type=finite_float,
                         help="QAT epochs for every model (default: --qat-share of its float epochs); for reused runs")
    compare.add_argument("--threads", default="1,2", help="benchmark thread counts (default 1,2)")
    compare.add_argument("--runs", type=int, default=50, help="timed benchmark runs (default 50)")
    compare.add_argument("--rounds", type=int, default=INTERLEAVED_ROUNDS,
                         help=f"interleaved benchmark passes over all int8 files; the median round counts "
                              f"(default {INTERLEAVED_ROUNDS})")
    compare.add_argument("--extra-exports", default="", help="also export and score: ptq (int8 from the float "
                         "model), fp32; comma-separated")
    compare.add_argument("--runs-from", help="reuse runs in this folder (<model>/ and <model>-qat/) instead of training")
    compare.add_argument("--verify-images", type=positive_int, help="val images scored per export (default: all)")
    compare.add_argument("--seed-spread", help="seeds.json of `bench seeds`: the report shows each model's int8 AP "
                         "sd over seeds and marks differences under 2 sd as not significant")
    compare.add_argument("--external", action="append", metavar="NAME=FILE",
                         help="a detector file made elsewhere (an Ultralytics LiteRT export, a TF Object Detection API "
                         "file, any file `eval` reads), scored on the same val images and timed with the kit's files, "
                         "as it is; repeat for several (one curve per toolkit)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.set_defaults(func=_cmd_compare)

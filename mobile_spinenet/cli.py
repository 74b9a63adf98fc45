"""The ``mobile-spinenet`` command."""
from __future__ import annotations

import argparse
import json
import os
import sys

from mobile_spinenet import __version__


def _cmd_models(args) -> int:
    from mobile_spinenet.zoo import MODELS

    print(f"{'model id':20s} {'input':>5s}  description")
    for info in MODELS.values():
        print(f"{info.model_id:20s} {info.image_size:5d}  {info.description}")
    return 0


def _cmd_summary(args) -> int:
    from mobile_spinenet.paper import ALL_TABLES
    from mobile_spinenet.summary import compare_rows, format_counts, measure

    if args.paper:
        for name in args.tables.split(","):
            if name not in ALL_TABLES:
                raise SystemExit(f"unknown table {name!r}; choose from {', '.join(ALL_TABLES)}")
            print(f"\n## {name}\n", flush=True)
            print(compare_rows(ALL_TABLES[name], progress=lambda m: print(f"  .. {m}", file=sys.stderr, flush=True)))
        print("\nratio = ours / reference; * marks a ratio outside 0.90..1.10")
        return 0
    if not args.model:
        raise SystemExit("summary needs a MODEL id (see `mobile-spinenet models`) or --paper")
    print(format_counts(measure(args.model, args.task, args.image_size, args.num_classes,
                                multiply_adds=not args.no_multiply_adds)))
    return 0


def _setup_logging() -> None:
    import logging
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _cmd_data_demo(args) -> int:
    from mobile_spinenet.data.demo import make_demo_dataset

    folders = make_demo_dataset(args.out, args.seed, args.train_images, args.val_images, progress=print)
    print(f"train: {folders['train']}\nval:   {folders['val']}")
    return 0


def _cmd_data_check(args) -> int:
    from mobile_spinenet.data.readers import read_dataset

    _setup_logging()
    dataset = read_dataset(args.data, full_check=True if args.full else None)
    boxes = sum(len(r.boxes) for r in dataset.records)
    print(f"{args.data}: {len(dataset)} usable images, {boxes} boxes, {dataset.label_map.num_classes} classes")
    print(dataset.issues.summary())
    return 0


def _train_overrides(args) -> dict:
    names = ("image_size", "epochs", "batch_size", "learning_rate", "warmup_epochs", "schedule", "strategy",
             "tpu", "seed", "checkpoint_every_steps", "val_max_images", "activation", "weight_decay")
    overrides = {name: getattr(args, name) for name in names}
    if args.jitter:
        overrides["jitter"] = [float(v) for v in args.jitter.split(",")]
    for flag in ("mixed_precision", "deterministic"):
        if getattr(args, flag):
            overrides[flag] = True
    return overrides


def _cmd_train(args) -> int:
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.runs import open_run
    from mobile_spinenet.quantization.export_run import record_sources
    from mobile_spinenet.training.trainer import Trainer

    _setup_logging()
    if args.resume and os.path.isfile(os.path.join(args.out, "config.yaml")):
        config = open_run(args.out).config  # the run's own recipe; flags may not change it mid-run
    else:
        config = load_config(args.model, args.config, _train_overrides(args))
    train = read_dataset(args.data)
    val = read_dataset(args.val, label_map=train.label_map) if args.val else None
    trainer = Trainer(config, train, args.out, val, show_progress=not args.no_progress)
    record_sources(args.out, args.data, args.val)
    print(f"training {config.model} at {trainer.image_size} px on {len(train)} images: "
          f"{trainer.total_steps} steps of {config.batch_size} ({trainer.steps_per_epoch}/epoch), "
          f"{trainer.replicas} replica(s), base lr {config.resolved_learning_rate():g} -> {args.out}", flush=True)
    row = trainer.fit(resume=args.resume)
    summary = ", ".join(f"{k} {row[k]:.4f}" for k in ("loss", "val_AP", "val_AP50") if k in row)
    print(f"done: {summary}\nrun directory: {args.out} (model.weights.h5, metrics.csv, curves.png, tensorboard/)")
    return 0


def _cmd_export(args) -> int:
    from mobile_spinenet.quantization.export_run import export_tflite

    _setup_logging()
    export_tflite(args.run, args.out, args.quant, args.calib, args.calib_steps, args.nms, args.max_detections,
                  not args.fast_nms, args.input_type, not args.no_verify, args.val, args.verify_images,
                  args.max_ap_drop)
    return 0


def _cmd_qat(args) -> int:
    from mobile_spinenet.quantization.qat_run import qat

    _setup_logging()
    row = qat(args.from_run, args.data, args.out, args.epochs, args.lr, args.batch, args.val, args.resume,
              show_progress=not args.no_progress)
    summary = ", ".join(f"{k} {row[k]:.4f}" for k in ("loss", "val_AP", "val_AP50") if k in row)
    print(f"done: {summary}\nQAT directory: {args.out} (export it with `mobile-spinenet export {args.out} "
          f"--quant int8 --out model.tflite`)")
    return 0


def _add_qat_parser(sub) -> None:
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
    qat.add_argument("--epochs", type=float, default=1.0)
    qat.add_argument("--lr", type=float, help="base learning rate (default: a tenth of the float run's)")
    qat.add_argument("--batch", type=int, help="global batch size (default: the float run's)")
    qat.add_argument("--resume", action="store_true", help="continue the QAT run in --out")
    qat.add_argument("--no-progress", action="store_true")
    qat.set_defaults(func=_cmd_qat)


def _cmd_benchmark(args) -> int:
    from mobile_spinenet.eval.benchmark import benchmark, format_results

    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise ValueError(f"--threads takes comma-separated whole numbers, got {args.threads!r}") from None
    results = benchmark(args.model, threads, args.runs, args.warmup, args.delegate, args.image)
    print(json.dumps(results, indent=1) if args.json else format_results(args.model, results))
    return 0


def _add_benchmark_parser(sub) -> None:
    bench = sub.add_parser(
        "benchmark", help="latency, memory and end-to-end time of a .tflite file",
        description="Run a .tflite file in the ai-edge-litert interpreter, each thread count in its own process: "
                    "init time, first inference, median/p90/min latency, end-to-end time (decode + resize + "
                    "inference + post-processing), peak RSS and model size. On a phone, run LiteRT's "
                    "benchmark_model on the same file (docs/benchmarks.md).")
    bench.add_argument("model", help="the .tflite file")
    bench.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    bench.add_argument("--runs", type=int, default=100)
    bench.add_argument("--warmup", type=int, default=10)
    bench.add_argument("--delegate", default="xnnpack", choices=["xnnpack", "none"],
                       help="xnnpack (the CPU default) or none (TFLite's built-in kernels)")
    bench.add_argument("--image", help="image for the end-to-end figure (default: a demo canvas)")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=_cmd_benchmark)


def _cmd_eval(args) -> int:
    from mobile_spinenet.eval.coco_metrics import format_metrics
    from mobile_spinenet.eval.evaluate import evaluate_path
    from mobile_spinenet.io_utils import write_json_atomically

    _setup_logging()
    metrics, detections = evaluate_path(args.model, args.data, args.max_images)
    print(format_metrics(metrics))
    if args.json:
        write_json_atomically(args.json, detections)
        print(f"detections (COCO results format): {args.json}")
    return 0


def _add_eval_parser(sub) -> None:
    evaluate = sub.add_parser(
        "eval", help="COCO AP of a run directory or a .tflite file (pycocotools)",
        description="Score a training run (Keras, float or QAT) or an exported .tflite file on a COCO or VOC "
                    "dataset with pycocotools: AP, AP50, AP75, APs/m/l, AR1/10/100 and per-class AP. Boxes are "
                    "mapped back to original image pixels (resize and padding undone).")
    evaluate.add_argument("model", help="run directory or .tflite file")
    evaluate.add_argument("--data", required=True, help="COCO folder/JSON or VOC folder")
    evaluate.add_argument("--json", help="write the detections here (COCO results format)")
    evaluate.add_argument("--max-images", type=int, help="score only the first N images")
    evaluate.set_defaults(func=_cmd_eval)


def _cmd_predict(args) -> int:
    from mobile_spinenet.eval.predict import predict_images

    _setup_logging()
    results = predict_images(args.model, args.images, args.out, args.score_threshold)
    for result in results:
        found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in result["detections"]) or "nothing"
        print(f"{result['image']}: {found} -> {result['drawn']}")
    print(f"detections: {os.path.join(args.out, 'detections.json')}")
    return 0


def _add_predict_parser(sub) -> None:
    predict = sub.add_parser(
        "predict", help="draw a model's detections on images",
        description="Run a training run (Keras) or a .tflite file on image files; write each image with its "
                    "boxes, labels and scores drawn, and detections.json (boxes in original-image pixels).")
    predict.add_argument("model", help="run directory or .tflite file")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--score-threshold", type=float, default=0.3)
    predict.set_defaults(func=_cmd_predict)


def _add_export_parser(sub) -> None:
    export = sub.add_parser(
        "export", help="export a run to TFLite (fp32, fp16, dynamic, int8), verified against Keras",
        description="Convert a training run to a .tflite file with TFLite_Detection_PostProcess in the graph "
                    "(outputs location, category, score, number of detections) or raw outputs, run it next "
                    "to the Keras model on validation images, and write it only when its AP holds "
                    "(a broken file is kept as OUT.rejected.tflite and the command fails).")
    export.add_argument("run", help="training run directory")
    export.add_argument("--out", required=True, help="the .tflite file to write (labels and a JSON report beside it)")
    export.add_argument("--quant", default="int8", choices=["fp32", "fp16", "dynamic", "int8"])
    export.add_argument("--calib", help="calibration images for int8 (default: the run's training data)")
    export.add_argument("--calib-steps", type=int, default=100, help="calibration images (default 100)")
    export.add_argument("--nms", default="tflite", choices=["tflite", "none"])
    export.add_argument("--fast-nms", action="store_true", help="class-agnostic NMS of the op (faster on device); "
                        "default: per-class NMS, as evaluation does")
    export.add_argument("--max-detections", type=int, default=100)
    export.add_argument("--input-type", default="float", choices=["float", "uint8"],
                        help="int8 only: uint8 takes raw pixels")
    export.add_argument("--val", help="verification images (default: the run's val data, else its training data)")
    export.add_argument("--verify-images", type=int, default=50)
    export.add_argument("--max-ap-drop", type=float, help="AP points the file may lose against Keras "
                        "(default: 0.1 fp32/fp16, 1.0 dynamic, 2.0 int8)")
    export.add_argument("--no-verify", action="store_true", help="skip verification (not recommended)")
    export.set_defaults(func=_cmd_export)


def _cmd_bench_train(args) -> int:
    from mobile_spinenet.training.bench import bench_train, format_bench

    result = bench_train(args.model, args.image_size, args.batch, args.steps, args.warmup, args.data, args.strategy)
    print(json.dumps(result, indent=1) if args.json else format_bench(result))
    return 0


def _add_train_parser(sub) -> None:
    train = sub.add_parser(
        "train", help="train a detector on COCO / VOC data",
        description="Train a model id with the paper's recipe (its YAML in mobile_spinenet/configs), "
                    "overridden by --config and then by flags. Writes config.yaml, label_map.json, "
                    "checkpoints/, steps.csv, metrics.csv, curves.png, tensorboard/ and model.weights.h5.")
    train.add_argument("--model", help="model id (see `mobile-spinenet models`)")
    train.add_argument("--data", required=True, help="training set: COCO folder/JSON or Pascal VOC folder")
    train.add_argument("--val", help="validation set, scored with pycocotools after every epoch")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--config", help="YAML file of TrainConfig fields (over the model's own), or a bundled "
                       "recipe name: cpu_demo")
    train.add_argument("--image-size", type=int)
    train.add_argument("--epochs", type=float)
    train.add_argument("--batch", dest="batch_size", type=int, help="global batch size")
    train.add_argument("--lr", dest="learning_rate", type=float, help="base learning rate "
                       "(default: 0.08 per 64 images)")
    train.add_argument("--warmup-epochs", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--schedule", choices=["step", "cosine"])
    train.add_argument("--jitter", help="scale jitter range as MIN,MAX (paper: 0.4,1.6)")
    train.add_argument("--activation", help="override the model's activation (e.g. hard_swish)")
    train.add_argument("--strategy", choices=["default", "mirrored", "multiworker", "tpu"])
    train.add_argument("--tpu", help="TPU name or address for --strategy tpu")
    train.add_argument("--mixed-precision", action="store_true")
    train.add_argument("--deterministic", action="store_true", help="deterministic TF ops (slower)")
    train.add_argument("--seed", type=int)
    train.add_argument("--checkpoint-every", dest="checkpoint_every_steps", type=int, help="steps")
    train.add_argument("--val-max-images", type=int, help="score only the first N val images")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)


def _add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="demo data and dataset checks",
                          description="Make the bundled demo dataset or check a dataset.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    demo = data_sub.add_parser("demo", help="write the Fashion-MNIST demo dataset (COCO format)",
                               description="Paste bundled Fashion-MNIST glyphs onto canvases and write "
                                           "OUT/train and OUT/val as COCO (annotations.json + images/).")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--train-images", type=int, default=800)
    demo.add_argument("--val-images", type=int, default=200)
    demo.set_defaults(func=_cmd_data_demo)
    check = data_sub.add_parser("check", help="read a dataset and report bad input",
                                description="Read a COCO or VOC dataset as training would and list "
                                            "what is skipped or fixed.")
    check.add_argument("data")
    check.add_argument("--full", action="store_true", help="decode every image (default: up to 5000)")
    check.set_defaults(func=_cmd_data_check)


def _add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="training-speed benchmarks",
                           description="Benchmarks that print numbers.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    train = bench_sub.add_parser("train", help="images/s of a training step and input-wait share",
                                 description="Time training steps on demo data (or --data) and report the "
                                             "share of time spent waiting on the input pipeline.")
    train.add_argument("--model", required=True)
    train.add_argument("--image-size", type=int)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--steps", type=int, default=20)
    train.add_argument("--warmup", type=int, default=3)
    train.add_argument("--data")
    train.add_argument("--strategy", default="default", choices=["default", "mirrored"])
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=_cmd_bench_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobile-spinenet",
        description="SpineNet detectors for phones and servers: build, count, train, quantize, export, compare.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser("models", help="list the model ids", description="List the model ids of the zoo.")
    models.set_defaults(func=_cmd_models)

    summary = sub.add_parser(
        "summary", help="params and multiply-adds of a model, or next to the paper's tables",
        description="Count params and multiply-adds (TF profiler on the frozen graph, float ops / 2).")
    summary.add_argument("model", nargs="?", help="model id (see `mobile-spinenet models`)")
    summary.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the model's)")
    summary.add_argument("--task", choices=["detection", "classification"], default="detection")
    summary.add_argument("--num-classes", type=int, default=80)
    summary.add_argument("--no-multiply-adds", action="store_true", help="skip the (slower) graph count")
    summary.add_argument("--paper", action="store_true",
                         help="print our counts next to the paper's Tables 9, 2 and 6 and the published counts")
    summary.add_argument("--tables", default="table9,table2,table6,published",
                         help="with --paper: which tables (comma-separated)")
    summary.set_defaults(func=_cmd_summary)
    _add_data_parser(sub)
    _add_train_parser(sub)
    _add_bench_parser(sub)
    _add_qat_parser(sub)
    _add_export_parser(sub)
    _add_benchmark_parser(sub)
    _add_eval_parser(sub)
    _add_predict_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except ValueError as error:  # bad ids, sizes, specs: one clear line, no traceback
        print(f"mobile-spinenet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

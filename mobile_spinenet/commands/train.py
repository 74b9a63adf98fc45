"""`mobile-spinenet train` and `bench train`."""
from __future__ import annotations

import json
import os
import sys

from mobile_spinenet.commands.common import (comma_list, finite_float, non_negative_float, non_negative_int,
                                             number_pair, parse_ints, positive_float, positive_int, setup_logging,
                                             yolo_splits)


def _train_overrides(args) -> dict:
    names = ("task", "image_size", "epochs", "batch_size", "learning_rate", "warmup_epochs", "schedule", "strategy",
             "tpu", "seed", "checkpoint_every_steps", "val_max_images", "validate_every", "activation", "weight_decay", "resize",
             "optimizer", "ema_decay", "init_from", "mosaic", "anchor_scale", "ssd_min_scale", "precision")
    overrides = {name: getattr(args, name) for name in names}
    if args.jitter:
        overrides["jitter"] = args.jitter
    for flag in ("deterministic", "jit_compile"):
        if getattr(args, flag):
            overrides[flag] = True
    if getattr(args, "spec", None):
        from mobile_spinenet.architecture import read_architecture
        overrides["architecture"] = read_architecture(args.spec).to_dict()
    else:
        overrides["architecture"] = None
    return overrides


def check_out_dir(path: str, flag: str = "--out") -> None:
    """A clear error when an output folder is an existing file (checked before any work)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path} is an existing file, not a folder")


def _resume_config(args):
    """The run's own recipe; a flag that would change it mid-run is refused, not ignored."""
    from mobile_spinenet.training.runs import open_run

    config = open_run(args.out).config
    changed = [f"{flag} {_shown(value)} (the run has {_shown(getattr(config, name))})"
               for name, flag, value in _given_flags(args) if value != getattr(config, name)]
    if changed:
        raise ValueError(f"--resume continues {args.out} with its own recipe, but these flags differ: "
                         f"{'; '.join(changed)}. Drop them, or train into a new --out")
    return config


def _shown(value) -> str:
    if isinstance(value, dict):  # an architecture (--spec)
        from mobile_spinenet.architecture import architecture_from_dict
        return f"architecture {architecture_from_dict(value).digest()}"
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def _given_flags(args):
    """(config field, flag, value) of every recipe flag given on the command line."""
    from mobile_spinenet.training.config import FLAGS

    for name, value in _train_overrides(args).items():
        if value is not None:
            yield name, FLAGS.get(name, "--" + name.replace("_", "-")), value
    if args.model:
        yield "model", "--model", args.model


def _cmd_train(args) -> int:
    from mobile_spinenet.training.config import load_config
    from mobile_spinenet.training.runs import refuse_to_restart
    from mobile_spinenet.training.workers import worker_role

    # Everything that can be checked without TensorFlow is checked before it loads.
    check_out_dir(args.out)
    if args.resume and not os.path.isfile(os.path.join(args.out, "config.yaml")):
        raise ValueError(f"--resume: {args.out} holds no run to continue (no config.yaml); leave out --resume to "
                         f"start a new run there")
    if args.resume:
        config = _resume_config(args)
    else:
        if args.init_from and not os.path.isfile(os.path.join(args.init_from, "config.yaml")):
            raise ValueError(f"--init {args.init_from} is not a run directory (no config.yaml)")
        overrides = _train_overrides(args)
        model = args.model or (overrides["architecture"] or {}).get("base")  # --spec's base by default
        config = load_config(model, args.config, overrides)
        if worker_role(config.strategy).is_chief:  # the chief owns --out; the other workers meet its files
            refuse_to_restart(args.out)
    from mobile_spinenet.training.runs import sources_record
    from mobile_spinenet.training.tasks import read_task_data
    from mobile_spinenet.training.trainer import Trainer

    setup_logging()
    args.data, args.val = yolo_splits(args.data, args.val)
    train, val = read_task_data(config.task, args.data, args.val)
    trainer = Trainer(config, train, args.out, val, show_progress=not args.no_progress,
                      records=sources_record(args.data, args.val))
    print(f"training {config.model} at {trainer.image_size} px on {len(train)} images: "
          f"{trainer.total_steps} steps of {config.batch_size} ({trainer.steps_per_epoch}/epoch), "
          f"{trainer.replicas} replica(s), base lr {config.resolved_learning_rate():g} -> {args.out}", flush=True)
    row = trainer.fit(resume=args.resume)
    summary = ", ".join(f"{k} {row[k]:.4f}" for k in ("loss", "val_AP", "val_AP50", "val_top1", "val_top5") if k in row)
    if not trainer.role.is_chief:
        print(f"done: {summary}\n{trainer.role.describe(trainer.role.index)}: the run is the chief's, in {args.out}")
        return 0
    print(f"done: {summary}\nrun directory: {args.out} (model.weights.h5, metrics.csv, curves.png, tensorboard/)")
    return 0


def add_train_parser(sub) -> None:
    train = sub.add_parser(
        "train", help="train a detector on COCO / VOC data, or a classifier on class folders",
        description="Train a model id with the paper's recipe (its family's YAML in mobile_spinenet/configs/base), "
                    "overridden by --config and then by flags. Writes config.yaml, label_map.json, "
                    "checkpoints/, steps.csv, metrics.csv, curves.png, tensorboard/ and model.weights.h5. "
                    "--task classification trains the model id's classifier (SpineNet: P3-P7 averaged, pooled, "
                    "linear; MobileNetV3-SSDLite ids: their MobileNetV3 classifier) on DATA/<class>/<images> "
                    "with softmax cross-entropy and label smoothing, scored by top-1/top-5 accuracy.")
    train.add_argument("--model", help="model id (see `mobile-spinenet models`)")
    train.add_argument("--task", choices=["detection", "classification", "instance-segmentation"],
                       help="what to train (default detection); instance-segmentation: Mask R-CNN on COCO "
                            "data with masks (docs/mask_rcnn.md)")
    train.add_argument("--data", required=True, help="training set: COCO folder/JSON or Pascal VOC folder "
                       "(classification: a folder of class folders, e.g. `data demo-classes` output's train/)")
    train.add_argument("--val", help="validation set, scored after every epoch (pycocotools AP, or top-1/top-5)")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--config", help="YAML file of TrainConfig fields (over the model's own), or a bundled "
                       "recipe name: cpu_demo, cpu_fast")
    train.add_argument("--image-size", type=positive_int, help="input side in pixels (default: the model id's)")
    train.add_argument("--epochs", type=positive_float, help="passes over the training set (default: the recipe's; "
                       "fractions are fine)")
    train.add_argument("--batch", dest="batch_size", type=positive_int, help="global batch size")
    train.add_argument("--lr", dest="learning_rate", type=positive_float, help="base learning rate "
                       "(default: 0.08 per 64 images)")
    train.add_argument("--warmup-epochs", type=non_negative_float,
                       help="epochs of linear learning-rate warm-up from zero (default: the recipe's)")
    train.add_argument("--weight-decay", type=non_negative_float, help="default: the recipe's (paper: 4e-5)")
    train.add_argument("--schedule", choices=["step", "cosine"],
                       help="learning-rate decay after warm-up: step (the paper's: x0.1 at 84%%, 92%% and 96%% of "
                            "training) or cosine (to zero)")
    train.add_argument("--optimizer", choices=["sgd", "adamw"],
                       help="sgd (the paper's; L2 weight decay) or adamw (decoupled weight decay on kernels)")
    train.add_argument("--ema-decay", type=positive_float,
                       help="keep a moving average of the weights (e.g. 0.999) for validation and the final weights")
    train.add_argument("--jitter", type=number_pair, help="scale jitter range as MIN,MAX (paper: 0.4,1.6)")
    train.add_argument("--mosaic", type=finite_float, metavar="SHARE",
                       help="detection: make this share (0-1) of the training examples a 2x2 mosaic of four "
                            "images at half scale (default 0)")
    train.add_argument("--anchor-scale", type=positive_float, metavar="STRIDES",
                       help="RetinaNet detectors: the base anchor size in strides of its level (the paper's 4, "
                            "Model Garden's 3; smaller anchors suit small objects, docs/training.md)")
    train.add_argument("--ssd-min-scale", type=positive_float, metavar="SHARE",
                       help="SSDLite detectors: the smallest anchor scale as a share of the input side (MobileNet-"
                            "SSDLite's 0.2; the first map's square is half of it; docs/training.md)")
    train.add_argument("--activation", help="override the model's activation (e.g. hard_swish)")
    train.add_argument("--spec", metavar="FILE",
                       help="a SpineNet-Mobile architecture file (what `mobile-spinenet search` writes; "
                            "docs/search.md): its blocks, widths and activation replace the base model id's "
                            "backbone; --model defaults to its base")
    train.add_argument("--resize", choices=["letterbox", "stretch"],
                       help="how images are fitted to the input square: letterbox (default: keep the aspect ratio, "
                            "pad) or stretch (what MediaPipe Tasks and the Task Library do); docs/quantization.md")
    train.add_argument("--strategy", choices=["default", "mirrored", "multiworker", "tpu"],
                       help="tf.distribute strategy: default (one device), mirrored (all local GPUs, or CPUs), "
                            "multiworker (needs TF_CONFIG), tpu (with --tpu)")
    train.add_argument("--tpu", help="TPU name or address for --strategy tpu")
    train.add_argument("--precision", choices=["float32", "mixed_bfloat16", "mixed_float16", "auto"],
                       help="number format of the training step (default float32): mixed_bfloat16 / mixed_float16 "
                            "compute layers in 16 bits with float32 weights, losses and optimizer (float16 with loss "
                            "scaling; needs a GPU); auto: float16 on a GPU, bfloat16 on a TPU or a CPU with AVX-512 "
                            "BF16 or AMX, float32 elsewhere. Weights and exports stay float32")
    train.add_argument("--xla", dest="jit_compile", action="store_true",
                       help="compile the forward and backward pass with XLA (for GPUs/TPUs: 3.4x slower on this kit's test CPU, "
                            "docs/training.md)")
    train.add_argument("--deterministic", action="store_true",
                       help="TF op determinism (slower); on CPU runs still differ in the last bits (docs/training.md)")
    train.add_argument("--seed", type=int, help="initial weights, data order, augmentation and the precise-BN "
                       "sample (default 0); runs with other seeds measure the spread of a result")
    train.add_argument("--checkpoint-every", dest="checkpoint_every_steps", type=positive_int, help="steps")
    train.add_argument("--val-max-images", type=positive_int, help="score only the first N val images")
    train.add_argument("--validate-every", type=positive_int, metavar="EPOCHS",
                       help="validate (after re-estimating batch norm) and redraw curves.png every N epochs and "
                            "after the last (default: as often as costs about 2%% of the training's work, from the "
                            "image counts; the cadence never changes the trained weights)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--init", dest="init_from", help="start from this finished run's weights wherever a layer "
                       "matches by name and shape (e.g. a RetinaNet run's backbone for Mask R-CNN on the same id); "
                       "the rest start fresh")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)


def _cmd_pack(args) -> int:
    from mobile_spinenet.training.runs import pack_run

    names = pack_run(args.run, args.out)
    size = sum(os.path.getsize(os.path.join(args.out, n)) for n in names) / 1e6
    print(f"packed {args.run} -> {args.out}: {', '.join(names)} ({size:.1f} MB)")
    return 0


def add_pack_parser(sub) -> None:
    pack = sub.add_parser(
        "pack", help="copy a finished run's final files to share or commit",
        description="Copy a finished run's final weights, config, label map, run.json, metrics and curves into a "
                    "new folder, without its checkpoints, TensorBoard logs or the paths of the data it read. "
                    "The folder is a run every command takes (eval, qat, export, compare --runs-from).")
    pack.add_argument("run", help="a finished run directory")
    pack.add_argument("--out", required=True, help="a new folder")
    pack.set_defaults(func=_cmd_pack)


def _cmd_bench_train(args) -> int:
    from mobile_spinenet.training.bench import bench_loop, bench_train, check_variants, format_bench, format_loop

    variants = check_variants([v for v in args.variants.split(",") if v])
    if args.epochs is not None:
        given = [flag for flag, value in (("--steps", args.steps), ("--warmup", args.warmup),
                                          ("--rounds", args.rounds)) if value is not None]
        if given or len(variants) > 1 or args.strategy != "default" or not args.data:
            raise ValueError("bench train --epochs times the whole loop of one variant on --data (and --val): "
                             + ("drop " + ", ".join(given) if given else "give --data" if not args.data
                                else "one --variants" if len(variants) > 1 else "--strategy default"))
        setup_logging()
        result = bench_loop(args.model, args.data, args.epochs, args.image_size, args.batch, args.val,
                            args.validate_every, args.config, variants[0], show_progress=sys.stderr.isatty())
        print(json.dumps(result, indent=1) if args.json else format_loop(result))
        return 0
    if args.val or args.validate_every:
        raise ValueError("--val and --validate-every belong to bench train --epochs (the whole loop)")
    args.steps, args.warmup, args.rounds = args.steps or 20, 3 if args.warmup is None else args.warmup, args.rounds or 4
    results = bench_train(args.model, args.image_size, args.batch, args.steps, args.warmup, args.data, args.strategy,
                          variants=variants, rounds=args.rounds, recipe=args.config,
                          progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(results, indent=1) if args.json else format_bench(results))
    return 0


def _cmd_bench_activations(args) -> int:
    from mobile_spinenet.eval.activation_bench import bench_activations, format_activation_bench

    rows = bench_activations(args.models.split(","), args.activations.split(","), args.image_size,
                             parse_ints(args.threads, "--threads"), args.runs, args.rounds)
    print(json.dumps(rows, indent=1) if args.json else format_activation_bench(rows))
    return 0


def _cmd_bench_variants(args) -> int:
    from mobile_spinenet.eval.latency_variants import bench_variants, format_variant_bench, parse_variants

    models = [m for m in args.models.split(",") if m]
    reference = args.reference or next((m for m in models if m.endswith("_ssdlite")), None)
    rows = bench_variants(models, parse_variants(args.variants), args.image_size, parse_ints(args.threads, "--threads"),
                          args.runs, args.rounds, reference=reference, keep=args.keep,
                          progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(rows, indent=1) if args.json else format_variant_bench(rows, reference))
    return 0


def _cmd_bench_seeds(args) -> int:
    from mobile_spinenet.eval.seed_spread import REPORT_FILE, SeedSpreadOptions, format_spread, seed_spread

    setup_logging()
    options = SeedSpreadOptions(runs_from=args.runs_from, data=args.data, out=args.out, val=args.val,
                                models=tuple(m for m in args.models.split(",") if m),
                                seeds=parse_ints(args.seeds, "--seeds"), qat_epochs=args.qat_epochs,
                                freeze_bn=args.freeze_bn, float_layers=args.float_layers,
                                verify_images=args.verify_images, show_progress=not args.no_progress).validate()
    record = seed_spread(options, progress=lambda message: print(message, flush=True))
    print(format_spread(record))
    print(f"recorded: {os.path.join(args.out, 'seeds.json')} and {os.path.join(args.out, REPORT_FILE)}; pass the "
          f"json to `compare --seed-spread`")
    return 0


def _cmd_bench_int8_sensitivity(args) -> int:
    from mobile_spinenet.eval.int8_sensitivity import (SensitivityOptions, format_sensitivity, int8_sensitivity,
                                                       parse_group)

    setup_logging()
    options = SensitivityOptions(run=args.run, data=args.data, val=args.val, out=args.out,
                                 groups=tuple(parse_group(text) for text in args.group or ()),
                                 calib_images=args.calib_images, calib_seed=args.calib_seed,
                                 val_images=args.val_images)
    record = int8_sensitivity(options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(json.dumps(record, indent=1) if args.json else format_sensitivity(record))
    return 0


def add_bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="training-speed and activation-latency benchmarks",
                           description="Benchmarks that print numbers.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    train = bench_sub.add_parser("train", help="images/s of a training step and input-wait share, or of the whole loop",
                                 description="Time training steps on demo data (or --data) and report the "
                                             "share of time spent waiting on the input pipeline. With --epochs, "
                                             "train that many epochs on --data through the whole training loop "
                                             "(validation on --val, checkpoints, plots) and report its images/s "
                                             "and the share of wall time outside the steps, by phase.")
    train.add_argument("--model", required=True, help="model id (see `mobile-spinenet models`)")
    train.add_argument("--image-size", type=positive_int, help="input side in pixels (default: the model id's)")
    train.add_argument("--batch", type=positive_int, default=8, help="global batch size (default 8)")
    train.add_argument("--steps", type=positive_int, help="timed steps per variant (default 20)")
    train.add_argument("--warmup", type=non_negative_int, help="untimed steps first, which include tracing (default 3)")
    train.add_argument("--epochs", type=positive_float,
                       help="time the whole training loop for this many epochs of --data instead of single steps")
    train.add_argument("--val", help="with --epochs: validation set, validated at the run's cadence")
    train.add_argument("--validate-every", type=positive_int, metavar="EPOCHS",
                       help="with --epochs: as train --validate-every (default: the run's own cadence)")
    train.add_argument("--data", help="training set to read (default: demo canvases written to a temporary folder)")
    train.add_argument("--strategy", default="default", choices=["default", "mirrored"],
                       help="default (one device) or mirrored (all local devices)")
    train.add_argument("--config", help="recipe the variants start from (a YAML file or a bundled recipe name)")
    train.add_argument("--variants", default="recipe",
                       help="comma-separated variants timed against each other in one interleaved run: recipe "
                            "(as the recipe says), plain (no XLA), xla (jit_compile: XLA forward and backward pass), "
                            "unfused (Keras's per-variable optimizer ops instead of fused ones), bfloat16 (--precision "
                            "mixed_bfloat16), no-onednn "
                            "(TensorFlow's own CPU kernels, its default on CPUs without AVX-512), before (no-onednn "
                            "and unfused: the step before the speed work); with no-onednn or before every variant "
                            "runs a new process per round")
    train.add_argument("--rounds", type=positive_int,
                       help="interleaved rounds over the variants (default 4; each round times steps/rounds steps)")
    train.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    train.set_defaults(func=_cmd_bench_train)
    activations = bench_sub.add_parser(
        "activations", help="int8 latency of models built with different activations",
        description="Build each model untrained with each activation, export it the QAT way to int8 TFLite "
                    "with raw outputs (--nms none: the network alone) and time it with ai-edge-litert/XNNPACK; also lists the ops "
                    "XNNPACK leaves to the builtin kernels. Weights do not change int8 latency.")
    activations.add_argument("--models", default="spinenet49xxs,spinenet49xs", help="comma-separated model ids")
    activations.add_argument("--activations", default="swish,hard_swish,relu", help="comma-separated activations")
    activations.add_argument("--image-size", type=positive_int, default=256, help="input side in pixels (default 256)")
    activations.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    activations.add_argument("--runs", type=positive_int, default=50, help="timed runs per file and round (default 50)")
    activations.add_argument("--rounds", type=positive_int, default=3,
                             help="interleaved passes over all files; the median round counts (default 3)")
    activations.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    activations.set_defaults(func=_cmd_bench_activations)
    variants = bench_sub.add_parser(
        "variants", help="int8 latency per multiply-add of models built with builder options (SpineNet-Mobile lite)",
        description="Build each model untrained in each variant (a set of builder options), export it the QAT way "
                    "to int8 TFLite with raw outputs (the network alone), time all files in one interleaved run "
                    "with ai-edge-litert/XNNPACK, and print ms, multiply-adds, ns per multiply-add and its ratio "
                    "to --reference's. A variant is 'paper' (the id as published) or OPTION=VALUE settings joined "
                    "by '+', e.g. channel_divisor=8+se_ratio=0+activation=relu; options: activation, "
                    "channel_divisor, se_ratio (0: no squeeze-excite), se_gate (sigmoid, hard_sigmoid). A model "
                    "whose family takes none of a variant's options (MobileNetV3-SSDLite) runs as 'paper' only.")
    variants.add_argument("--models", default="spinenet49xs,mnv3_large_ssdlite", help="comma-separated model ids")
    variants.add_argument("--variants", default="paper,channel_divisor=8,se_ratio=0,se_gate=hard_sigmoid,activation=relu6",
                          help="comma-separated variants (default: the paper's and each option alone)")
    variants.add_argument("--reference", help="model of --models whose paper variant the ns per multiply-add "
                                             "are divided by (default: the first SSDLite of --models)")
    variants.add_argument("--image-size", type=positive_int, default=256, help="input side in pixels (default 256)")
    variants.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    variants.add_argument("--runs", type=positive_int, default=50, help="timed runs per file and round (default 50)")
    variants.add_argument("--rounds", type=positive_int, default=3,
                          help="interleaved passes over all files; the median round counts (default 3)")
    variants.add_argument("--keep", metavar="DIR", help="keep the int8 files in DIR (e.g. for benchmark --profile)")
    variants.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    variants.set_defaults(func=_cmd_bench_variants)
    seeds = bench_sub.add_parser(
        "seeds", help="spread of each model's int8 AP over reruns of the QAT fine-tune with other seeds",
        description="For each model's trained float run in --runs-from and each seed: QAT fine-tune, verified int8 "
                    "export, Keras and int8 AP on the val set. Writes OUT/seeds.json (every finished seed at once; "
                    "rerun to resume) and OUT/seeds.md (mean and sample sd per model). `compare --seed-spread "
                    "OUT/seeds.json` marks AP differences under 2 sd as not significant.")
    seeds.add_argument("--runs-from", required=True, help="folder of finished float runs <model>/ (e.g. checkpoints/demo)")
    seeds.add_argument("--data", required=True, help="a folder with train/ and val/, or the training set with --val")
    seeds.add_argument("--val", help="validation set (default: DATA/val)")
    seeds.add_argument("--models", required=True,
                       help="comma-separated run folders of --runs-from (a model id, ID@SIZE, or any finished run's name)")
    seeds.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    seeds.add_argument("--qat-epochs", type=positive_float, default=0.25, help="QAT epochs per seed (default 0.25)")
    seeds.add_argument("--freeze-bn", action="store_true",
                       help="QAT with the float run's BN layers frozen, as `qat --freeze-bn` (docs/quantization.md); "
                            "a seeds.json holds one setting, so measure the two into different --out folders")
    seeds.add_argument("--float-layers", type=comma_list, default=(), metavar="PATTERNS",
                       help="comma-separated shell patterns of layer names left float in every model's QAT, as "
                            "`qat --float-layers` (mixed precision; each pattern must match a layer of every model, "
                            "checked before any work); a seeds.json holds one setting")
    seeds.add_argument("--verify-images", type=positive_int, help="val images scored (default: all)")
    seeds.add_argument("--out", required=True, help="folder for seeds.json, seeds.md, runs/ and exports/")
    seeds.add_argument("--no-progress", action="store_true", help="no progress bars")
    seeds.set_defaults(func=_cmd_bench_seeds)
    sensitivity = bench_sub.add_parser(
        "int8-sensitivity", help="AP each group of layers loses to int8: the float run scored with every layer "
                                 "int8, then with one group at a time left float",
        description="Calibrate the run's quantization-aware copy as `export --quant int8` does (median of batch "
                    "ranges, BN frozen), with every layer quantized and then with each group of layers left float, "
                    "and score each fake-quantized Keras model on the val set (no fine-tune, no conversion; about "
                    "1.5 minutes a group for SpineNet-49xxs). Groups default to the layer-name prefixes (stem, "
                    "block2, ..., endpoint, boxes, classes). Make the file of a chosen group with `export "
                    "--float-layers` and time it with `benchmark` (docs/quantization.md).")
    sensitivity.add_argument("run", help="a finished float detection run (or a packed checkpoint)")
    sensitivity.add_argument("--data", help="calibration images (default: the run's training data)")
    sensitivity.add_argument("--val", help="scored images (default: the run's val data)")
    sensitivity.add_argument("--group", action="append", metavar="NAME=PATTERNS",
                             help="a group of layers left float together, as comma-separated shell patterns of "
                                  "layer names, e.g. head='boxes*,classes*' (repeat for more groups; default: one "
                                  "group per layer-name prefix)")
    sensitivity.add_argument("--calib-images", type=positive_int, default=256, help="calibration images (default 256)")
    sensitivity.add_argument("--calib-seed", type=int, default=0, help="which calibration images (default 0)")
    sensitivity.add_argument("--val-images", type=positive_int, help="val images scored (default: all)")
    sensitivity.add_argument("--out", help="results JSON, written after every group; rerun to resume")
    sensitivity.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    sensitivity.set_defaults(func=_cmd_bench_int8_sensitivity)


"""The ``mobile-spinenet`` command."""
from __future__ import annotations

import argparse
import sys

from mobile_spinenet import __version__
from mobile_spinenet.commands import data, evaluate, interop, quantize, search, train
from mobile_spinenet.training.stop import StopRequested
from mobile_spinenet.training.workers import PeerLost


def _cmd_models(args) -> int:
    from mobile_spinenet.registry import MODELS

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
    summary.add_argument("--task", choices=["detection", "classification", "instance-segmentation"],
                         default="detection", help="instance-segmentation: Mask R-CNN (1000 proposals, 100 masks)")
    summary.add_argument("--num-classes", type=int, default=80, help="classes of the head (default 80, COCO's)")
    summary.add_argument("--no-multiply-adds", action="store_true", help="skip the (slower) graph count")
    summary.add_argument("--paper", action="store_true",
                         help="print our counts next to the paper's Tables 9, 2, 5 and 6 and the published counts")
    summary.add_argument("--tables", default="table9,table2,table5,table6,published",
                         help="with --paper: which tables (comma-separated)")
    summary.set_defaults(func=_cmd_summary)
    data.add_data_parser(sub)
    train.add_train_parser(sub)
    train.add_pack_parser(sub)
    train.add_bench_parser(sub)
    quantize.add_qat_parser(sub)
    quantize.add_export_parser(sub)
    quantize.add_export_savedmodel_parser(sub)
    quantize.add_android_assets_parser(sub)
    evaluate.add_benchmark_parser(sub)
    evaluate.add_eval_parser(sub)
    evaluate.add_predict_parser(sub)
    evaluate.add_compare_parser(sub)
    search.add_search_parser(sub)
    interop.add_import_parser(sub)
    interop.add_export_checkpoint_parser(sub)
    return parser


def kit_error_inside(error: BaseException):
    """The message of a kit ``ValueError`` that TensorFlow re-raised as its own error (an image that
    fails to decode inside a ``tf.data`` pipeline's ``numpy_function``), else None."""
    if not type(error).__module__.startswith("tensorflow"):
        return None
    text = str(error)
    marker = "ValueError: "
    if marker not in text:
        return None
    return text[text.rindex(marker) + len(marker):].splitlines()[0].strip() or None


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except StopRequested as stop:  # Ctrl-C or kill during training: a checkpoint was saved
        again = "the same command with --resume" if hasattr(args, "resume") else "the same command"
        print(f"mobile-spinenet {args.command}: {stop}; {again} continues from it", file=sys.stderr)
        return stop.exit_code
    except PeerLost as lost:  # a multi-worker run lost a worker: this one stops, naming it
        print(f"mobile-spinenet {args.command}: {lost}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C in training, or one anywhere else: no traceback
        print(f"mobile-spinenet {args.command}: interrupted", file=sys.stderr)
        return 130
    except ValueError as error:  # bad ids, sizes, specs: one clear line, no traceback
        print(f"mobile-spinenet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, no permission: the file and the reason, no traceback
        print(f"mobile-spinenet {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 (re-raised unless it carries one of the kit's errors)
        message = kit_error_inside(error)
        if message is None:
            raise
        print(f"mobile-spinenet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`mobile-spinenet import model-garden` and `export-checkpoint model-garden`: other toolkits'
checkpoints in, kit runs out, and back."""
from __future__ import annotations

from mobile_spinenet.commands.common import finite_float, positive_int


def _cmd_import_model_garden(args) -> int:
    from mobile_spinenet.interop.model_garden import ImportOptions, import_model_garden

    record = import_model_garden(ImportOptions(checkpoint=args.checkpoint, model=args.model, out=args.out,
                                               image_size=args.image_size, anchor_size=args.anchor_size,
                                               activation=args.activation))
    unused = ", ".join(f"{group} ({count})" for group, count in record["variables_unused"].items()) or "none"
    print(f"imported {record['variables_used']} variables of {record['checkpoint']} into {args.out}; "
          f"not used: {unused}")
    print(f"next: mobile-spinenet eval {args.out} --data COCO_VAL, or qat / export / compare --runs-from as for "
          f"any run")
    return 0


def _cmd_export_checkpoint_model_garden(args) -> int:
    from mobile_spinenet.interop.model_garden_export import export_model_garden

    summary = export_model_garden(args.run, args.out)
    config = summary["model_garden_config"]
    print(f"Model Garden config: backbone {config['backbone']} model_id {config['model_id']}, num_classes "
          f"{config['num_classes']}, anchor_size {config['anchor_size']}, head num_filters {config['head_num_filters']}"
          f"{' separable' if config['use_separable_conv'] else ''}, activation {config['activation']}, input "
          f"{config['input_size'][0]} px; restore with tf.train.Checkpoint(model=retinanet).read(CKPT)")
    return 0


def add_export_checkpoint_parser(sub) -> None:
    exports = sub.add_parser("export-checkpoint", help="write a kit run as another toolkit's checkpoint",
                             description="Write a kit run directory as a checkpoint another toolkit loads.")
    exports_sub = exports.add_subparsers(dest="export_command", metavar="FORMAT", required=True)
    garden = exports_sub.add_parser(
        "model-garden", help="a TF Model Garden RetinaNet checkpoint",
        description="Write a float SpineNet detector run as a TF Model Garden RetinaNet checkpoint "
                    "(tf.train.Checkpoint(model=retinanet) restores it), with OUT.model_garden.json naming the "
                    "Model Garden config values that rebuild the detector and what Model Garden computes "
                    "differently from the run, if anything (e.g. a sigmoid squeeze-excite gate).")
    garden.add_argument("run", help="a float run directory (trained or imported)")
    garden.add_argument("--out", required=True, help="checkpoint prefix to write, e.g. mg/ckpt-1")
    garden.set_defaults(func=_cmd_export_checkpoint_model_garden)


def add_import_parser(sub) -> None:
    from mobile_spinenet.interop.model_garden import MODEL_GARDEN_IDS

    imports = sub.add_parser("import", help="read another toolkit's checkpoint into a kit run directory",
                             description="Read a published or trained checkpoint of another toolkit into an "
                                         "ordinary run directory that eval, qat, export, predict, benchmark and "
                                         "compare --runs-from take.")
    imports_sub = imports.add_subparsers(dest="import_command", metavar="FORMAT", required=True)
    garden = imports_sub.add_parser(
        "model-garden", help="a TF Model Garden RetinaNet checkpoint (SpineNet or SpineNet-Mobile backbone)",
        description="Read a TF Model Garden RetinaNet checkpoint (official.vision, tf.train.Checkpoint with a "
                    "SpineNet or SpineNet-Mobile backbone and a RetinaNet head) into OUT. Variables are mapped by "
                    "structure and every shape is checked. The run records what Model Garden's detector does "
                    "differently (anchor size, hard-sigmoid SE gate, ImageNet input normalisation, head width, "
                    "boxes clipped before NMS) and drops the background logit. Model Garden ids: "
                    + ", ".join(f"{kit} = {theirs}" for kit, theirs in MODEL_GARDEN_IDS.items()) + ".")
    garden.add_argument("checkpoint", help="checkpoint prefix (ckpt-NNN) or a folder holding a `checkpoint` file")
    garden.add_argument("--model", required=True, choices=sorted(MODEL_GARDEN_IDS), metavar="ID",
                        help="the kit id of the checkpoint's backbone: " + ", ".join(sorted(MODEL_GARDEN_IDS)))
    garden.add_argument("--image-size", type=positive_int, default=None,
                        help="input side in pixels (default: the kit id's; Model Garden's configs: 384 or 640)")
    garden.add_argument("--anchor-size", type=finite_float, default=3.0,
                        help="the checkpoint's anchor size in strides (Model Garden's SpineNet configs: 3)")
    garden.add_argument("--activation", default="swish", help="the checkpoint's activation (Model Garden: swish)")
    garden.add_argument("--out", required=True, help="the new run directory")
    garden.set_defaults(func=_cmd_import_model_garden)

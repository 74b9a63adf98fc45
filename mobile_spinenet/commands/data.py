"""`mobile-spinenet data demo|demo-classes|check|convert`."""
from __future__ import annotations

import os

from mobile_spinenet.commands.common import positive_int, setup_logging


def _cmd_data_demo(args) -> int:
    from mobile_spinenet.data.demo import LICENSE_FILE, make_demo_dataset
    from mobile_spinenet.ownership import refuse_to_replace

    # an earlier `data demo` leaves its license file beside train/ and val/: its folders may be rewritten
    ours = os.path.isfile(os.path.join(args.out, LICENSE_FILE))
    refuse_to_replace([os.path.join(args.out, split) for split in ("train", "val")], lambda path: ours,
                      "an earlier data demo", force=args.force)
    folders = make_demo_dataset(args.out, args.seed, args.train_images, args.val_images, progress=print)
    print(f"train: {folders['train']}\nval:   {folders['val']}")
    return 0


def _cmd_data_demo_classes(args) -> int:
    from mobile_spinenet.data.class_folders import make_demo_class_folders

    folders = make_demo_class_folders(args.out, progress=print, fashion_mnist=args.fashion_mnist,
                                      train_per_class=args.train_per_class, seed=args.seed)
    print(f"train: {folders['train']}\nval:   {folders['val']}")
    return 0


def _cmd_data_check(args) -> int:
    from mobile_spinenet.data.readers import read_dataset

    setup_logging()
    dataset = read_dataset(args.data, full_check=not args.headers_only)
    boxes = sum(len(r.boxes) for r in dataset.records)
    print(f"{args.data}: {len(dataset)} usable images, {boxes} boxes, {dataset.label_map.num_classes} classes")
    print(dataset.issues.summary())
    return 0


def _cmd_data_convert(args) -> int:
    from mobile_spinenet.data.convert import convert

    setup_logging()
    convert(args.source, args.to, args.out, args.split)
    return 0


def add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="demo data and dataset checks",
                          description="Make the bundled demo dataset or check a dataset.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    demo = data_sub.add_parser("demo", help="write the Fashion-MNIST demo dataset (COCO format)",
                               description="Paste bundled Fashion-MNIST glyphs onto canvases and write "
                                           "OUT/train and OUT/val as COCO (annotations.json + images/).")
    demo.add_argument("--out", required=True, help="folder for train/ and val/ (created)")
    demo.add_argument("--seed", type=int, default=0, help="which canvases are drawn (default 0)")
    demo.add_argument("--train-images", type=positive_int, default=800, help="training canvases (default 800)")
    demo.add_argument("--val-images", type=positive_int, default=200, help="val canvases (default 200)")
    demo.add_argument("--force", action="store_true",
                      help="write over OUT/train and OUT/val when an earlier `data demo` did not make them")
    demo.set_defaults(func=_cmd_data_demo)
    classes = data_sub.add_parser(
        "demo-classes", help="write the Fashion-MNIST photos as class folders (classification)",
        description="Write the bundled Fashion-MNIST photos (10 classes, 250 train and 100 val images a class, "
                    "disjoint) as OUT/train/<class>/ and OUT/val/<class>/, the ImageNet folder layout; "
                    "--fashion-mnist takes more training photos from Fashion-MNIST's own files.")
    classes.add_argument("--out", required=True, help="folder for train/<class>/ and val/<class>/ (created)")
    classes.add_argument("--fashion-mnist", metavar="DIR",
                         help="draw the training photos from this Fashion-MNIST folder instead (its "
                              "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, e.g. "
                              "/usr/share/datasets/fashion-mnist from the Debian package dataset-fashion-mnist); "
                              "the val photos stay the bundled ones, from Fashion-MNIST's test set")
    classes.add_argument("--train-per-class", type=positive_int, metavar="N",
                         help="with --fashion-mnist: training photos a class (default: all, 6000)")
    classes.add_argument("--seed", type=int, default=0, help="with --fashion-mnist: which photos are picked")
    classes.set_defaults(func=_cmd_data_demo_classes)
    check = data_sub.add_parser("check", help="read a dataset and report bad input",
                                description="Read a COCO, VOC or YOLO dataset as training would and list "
                                            "what is skipped or fixed.")
    check.add_argument("data")
    check.add_argument("--headers-only", action="store_true",
                       help="read only each image's header (fast on huge sets, but misses truncated files); "
                            "default: decode every image, in parallel")
    check.set_defaults(func=_cmd_data_check)
    convert = data_sub.add_parser(
        "convert", help="write a dataset as COCO or as YOLO (images/ + labels/ + data.yaml)",
        description="Read SOURCE as training would (COCO, VOC or YOLO; one split, a folder of split folders such "
                    "as `data demo` writes, or a YOLO data.yaml) and write it as COCO (annotations.json + images/; "
                    "OUT/<split>/ for several splits) or as a YOLO dataset OUT (images/<split>/, labels/<split>/, "
                    "data.yaml; a later split joins an existing data.yaml with the same classes). Images are "
                    "hard-linked where possible, else copied; crowd regions and VOC's difficult objects, which "
                    "the kit does not train on, are left out. Never writes over an existing split.")
    convert.add_argument("source", help="dataset to read")
    convert.add_argument("--to", required=True, choices=["coco", "yolo"], help="format to write")
    convert.add_argument("--out", required=True, help="output folder (COCO split, or the YOLO dataset folder)")
    convert.add_argument("--split", help="the split's name: which split of a several-split SOURCE to convert, or "
                                          "the name a one-split SOURCE gets in a YOLO dataset (default train)")
    convert.set_defaults(func=_cmd_data_convert)

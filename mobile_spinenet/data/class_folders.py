"""Image-folder datasets for classification (the ImageNet layout): one sub-folder per class,
named by the class, holding that class's images. Classes are the sub-folders in sorted order.

Bad input is refused with an error that names it, before any training: a missing folder, no
class folders, an empty class folder, a file that is not an image (by extension, or an image
file PIL cannot read). Hidden files (``.DS_Store``, ``.gitkeep``) are ignored.

``make_demo_class_folders`` writes the bundled Fashion-MNIST photos in this layout (TF-free)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from mobile_spinenet.data.images import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ClassFolderDataset:
    """``paths[i]`` is an image of class ``labels[i]`` (an index into ``class_names``)."""

    root: str
    class_names: tuple
    paths: tuple
    labels: tuple

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict:
        return {name: self.labels.count(i) for i, name in enumerate(self.class_names)}


def _check_image(path: str) -> None:
    from PIL import Image, UnidentifiedImageError

    if not path.lower().endswith(IMAGE_EXTENSIONS):
        raise ValueError(f"{path} is not an image (extension {os.path.splitext(path)[1] or 'none'}; "
                         f"class folders hold only {', '.join(IMAGE_EXTENSIONS)} files)")
    try:
        with Image.open(path) as image:
            image.size  # the header is read and checked
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path} cannot be read as an image: {str(error).splitlines()[0]}") from None


# how a folder that read_dataset would read as detection data is named when given as class folders
DETECTION_LAYOUT_NAMES = {"coco": "COCO detection dataset (annotations.json)",
                          "voc": "Pascal VOC detection dataset (Annotations/)"}


def read_class_folders(root: str, class_names: Optional[tuple] = None, check_images: bool = True
                       ) -> ClassFolderDataset:
    """Read ``root/<class>/<image>``; ``class_names`` fixes the class order (a val set read with
    the training set's classes) and refuses folders it does not list."""
    if not os.path.isdir(root):
        raise ValueError(f"--data {root} is not a folder (expected one sub-folder per class)")
    from mobile_spinenet.data.readers import detection_layout, split_to_pass

    layout = detection_layout(root)
    if layout:
        raise ValueError(f"{root} is a {DETECTION_LAYOUT_NAMES[layout]}, not class folders: classification reads {root}/<class name>/<images> "
                         f"(`data demo-classes` writes such folders; detection data needs --task detection)")
    found = sorted(n for n in os.listdir(root) if not n.startswith(".") and os.path.isdir(os.path.join(root, n)))
    stray = sorted(n for n in os.listdir(root) if not n.startswith(".") and not os.path.isdir(os.path.join(root, n)))
    if not found:
        raise ValueError(f"{root} has no class folders (expected {root}/<class name>/<images>)")
    splits = [n for n in found if _holds_only_folders(os.path.join(root, n))]
    if splits == found and (class_names is None or not set(found) & set(class_names)):
        raise ValueError(f"{root} holds sets of class folders ({', '.join(s + '/' for s in splits)}), not class "
                         f"folders; pass one of them, e.g. {split_to_pass(root, splits)}")
    if stray:
        raise ValueError(f"{root} holds files beside the class folders ({', '.join(stray[:3])}"
                         f"{', ...' if len(stray) > 3 else ''}); move them out: every image belongs in its class folder")
    names = tuple(class_names) if class_names is not None else tuple(found)
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise ValueError(f"{root} has class folders the model does not know: {', '.join(unknown)} "
                         f"(its classes: {', '.join(names)})")
    paths, labels = [], []
    for index, name in enumerate(names):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue  # a class the val set happens not to have
        files = sorted(f for f in os.listdir(folder) if not f.startswith("."))
        images = [os.path.join(folder, f) for f in files]
        if not images:
            raise ValueError(f"class folder {folder} is empty; remove it or add images of class {name!r}")
        for path in images:
            if os.path.isdir(path):
                raise ValueError(f"{path} is a folder inside class folder {folder}; class folders hold images only")
            if check_images:
                _check_image(path)
        paths.extend(images)
        labels.extend([index] * len(images))
    return ClassFolderDataset(root, names, tuple(paths), tuple(labels))


def _holds_only_folders(folder: str) -> bool:
    """Whether ``folder`` has sub-folders and nothing else (a set of class folders, not a class)."""
    names = [n for n in os.listdir(folder) if not n.startswith(".")]
    return bool(names) and all(os.path.isdir(os.path.join(folder, n)) for n in names)


def make_demo_class_folders(out_dir: str, progress=None, fashion_mnist: Optional[str] = None,
                            train_per_class: Optional[int] = None, seed: int = 0) -> dict:
    """Write the bundled Fashion-MNIST photos as ``out_dir/train/<class>/`` and ``out_dir/val/<class>/``
    (PNG, 28x28 grey as stored; 250 train and 100 val images a class, disjoint); returns the folders.

    ``fashion_mnist``: a folder of Fashion-MNIST's own files (e.g. the Debian package
    ``dataset-fashion-mnist``'s ``/usr/share/datasets/fashion-mnist``) to draw the training photos
    from instead, ``train_per_class`` of every class (default all, 6,000) picked with ``seed``; the
    val photos stay the bundled ones (from Fashion-MNIST's test set, so never a training photo)."""
    import io

    import numpy as np
    from PIL import Image

    from mobile_spinenet.data.glyphs import CLASS_NAMES, load_glyphs, pick_per_class, read_fashion_mnist
    from mobile_spinenet.io_utils import write_atomically

    if fashion_mnist is not None:
        images, labels = read_fashion_mnist(fashion_mnist, "train")
        per_class = train_per_class if train_per_class is not None else int(np.bincount(labels).min())
        picked = np.sort(pick_per_class(labels, per_class, np.random.default_rng(seed), fashion_mnist))
        train = images[picked], labels[picked]
    elif train_per_class is not None:
        raise ValueError("train_per_class needs fashion_mnist: the bundled photos are 250 a class")
    else:
        train = load_glyphs("train")
    sources = {"train": train, "val": load_glyphs("val")}
    planned = {split: _demo_photo_paths(out_dir, split, labels) for split, (_, labels) in sources.items()}
    for split, paths in planned.items():  # before any write: a folder of another set would be mixed in
        _refuse_other_files(os.path.join(out_dir, split), set(paths))
    folders = {}
    for split, (images, _) in sources.items():
        for name in CLASS_NAMES:
            os.makedirs(os.path.join(out_dir, split, name.replace(" ", "_")), exist_ok=True)
        for image, path in zip(images, planned[split]):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            write_atomically(path, buffer.getvalue())
        folders[split] = os.path.join(out_dir, split)
        if progress:
            progress(f"wrote {len(images)} {split} images in {len(CLASS_NAMES)} class folders to {folders[split]}")
    return folders


def _demo_photo_paths(out_dir: str, split: str, labels) -> list:
    """``OUT/<split>/<class>/<split>_NNNN.png`` of each photo, numbered within its class."""
    from mobile_spinenet.data.glyphs import CLASS_NAMES

    digits = max(4, len(str(len(labels))))
    counters, paths = {}, []
    for label in labels:
        name = CLASS_NAMES[int(label)].replace(" ", "_")
        index = counters[name] = counters.get(name, -1) + 1
        paths.append(os.path.join(out_dir, split, name, f"{split}_{index:0{digits}d}.png"))
    return paths


def _refuse_other_files(folder: str, planned: set) -> None:
    """A folder that already holds files this set would not write (another size or source) is
    refused: the two sets would be read as one."""
    from mobile_spinenet.io_utils import TEMP_PREFIX

    if not os.path.isdir(folder):
        return
    others = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
              if os.path.join(root, name) not in planned and not name.startswith(TEMP_PREFIX)]  # a killed write's
    if others:
        raise ValueError(f"{folder} holds {len(others)} files this set does not write (e.g. {others[0]}), "
                         "written by another `data demo-classes` set or something else: choose an empty --out")

"""Classification data in the ImageNet folder layout: the bundled demo classes are written and
read back, and bad input (empty class folder, non-image file, unreadable image, stray files,
unknown classes) is refused naming the file or folder, before any training."""
import os

import pytest
from PIL import Image

from mobile_spinenet.cli import main
from mobile_spinenet.data.class_folders import read_class_folders
from mobile_spinenet.data.glyphs import CLASS_NAMES


def _image(path, value=128):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)


@pytest.fixture(scope="module")
def demo_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    assert main(["data", "demo-classes", "--out", str(root)]) == 0
    return root


def test_demo_classes_are_the_bundled_photos_in_class_folders(demo_classes):
    train = read_class_folders(str(demo_classes / "train"))
    val = read_class_folders(str(demo_classes / "val"), class_names=train.class_names)
    assert train.num_classes == 10 and sorted(n.replace("_", " ") for n in train.class_names) == sorted(CLASS_NAMES)
    assert set(train.counts().values()) == {250} and set(val.counts().values()) == {100}
    with Image.open(train.paths[0]) as image:
        assert image.size == (28, 28)
    label = train.labels[0]
    assert os.path.basename(os.path.dirname(train.paths[0])) == train.class_names[label]


def test_bad_class_folders_are_refused_naming_what_is_wrong(tmp_path):
    root = tmp_path / "data"
    _image(str(root / "cat" / "a.png"))
    _image(str(root / "dog" / "b.jpg"))
    assert read_class_folders(str(root)).class_names == ("cat", "dog")

    (root / "bird").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*bird is empty"):
        read_class_folders(str(root))
    (root / "bird").rmdir()

    (root / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"dog/notes.txt is not an image \(extension .txt"):
        read_class_folders(str(root))
    (root / "dog" / "notes.txt").unlink()

    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=r"dog/broken.jpg cannot be read as an image"):
        read_class_folders(str(root))
    (root / "dog" / "broken.jpg").unlink()

    (root / "stray.png").write_bytes(b"")
    with pytest.raises(ValueError, match="holds files beside the class folders"):
        read_class_folders(str(root))
    (root / "stray.png").unlink()

    (root / "dog" / ".DS_Store").write_bytes(b"\0")  # hidden files are not data
    assert len(read_class_folders(str(root))) == 2
    with pytest.raises(ValueError, match="class folders the model does not know: dog"):
        read_class_folders(str(root), class_names=("cat",))
    with pytest.raises(ValueError, match="is not a folder"):
        read_class_folders(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="has no class folders"):
        read_class_folders(str(root / "cat"))


def test_a_detection_dataset_given_as_class_folders_is_named_as_such(tmp_path):
    from mobile_spinenet.data.demo import make_split

    make_split(str(tmp_path / "coco"), "train", 2, seed=0)  # annotations.json + images/
    with pytest.raises(ValueError, match=r"coco is a COCO detection dataset \(annotations.json\), not class folders"):
        read_class_folders(str(tmp_path / "coco"))
    voc = tmp_path / "voc"
    _image(str(voc / "JPEGImages" / "a.jpg"))
    (voc / "Annotations").mkdir()
    (voc / "Annotations" / "a.xml").write_text("<annotation/>")
    with pytest.raises(ValueError, match=r"voc is a Pascal VOC detection dataset \(Annotations/\), not class folders"):
        read_class_folders(str(voc))


def test_class_folders_given_as_detection_data_are_named_as_such(tmp_path):
    # `eval RUN --data` of a detector on class folders said only "neither COCO nor VOC"
    from mobile_spinenet.data.readers import read_dataset

    _image(str(tmp_path / "classes" / "cat" / "a.png"))
    with pytest.raises(ValueError, match=r"classes holds class folders \(<class name>/<images>\), which is "
                                         r"classification data; a detector reads a COCO dataset"):
        read_dataset(str(tmp_path / "classes"))
    (tmp_path / "other" / "notes").mkdir(parents=True)  # sub-folders without images: not class folders
    with pytest.raises(ValueError, match="other is neither a COCO dataset"):
        read_dataset(str(tmp_path / "other"))


def test_the_folder_above_the_splits_is_named_with_the_split_to_pass(tmp_path):
    # eval --data DATA (train/ and val/ below it) said "neither COCO nor VOC" (detection) or listed
    # train and val as class folders the model does not know (classification)
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset

    for split in ("train", "val"):
        make_split(str(tmp_path / "det" / split), split, 1, seed=0)
        _image(str(tmp_path / "cls" / split / "cat" / "a.png"))
    with pytest.raises(ValueError, match=r"det holds the datasets train/, val/; pass one of them, e\.g\. .*det/val$"):
        read_dataset(str(tmp_path / "det"))
    with pytest.raises(ValueError, match=r"images is part of the dataset .*det/val; pass that folder"):
        read_dataset(str(tmp_path / "det" / "val" / "images"))
    with pytest.raises(ValueError, match=r"cls holds sets of class folders \(train/, val/\), not class folders; "
                                         r"pass one of them, e\.g\. .*cls/val$"):
        read_class_folders(str(tmp_path / "cls"), class_names=("cat", "dog"))
    assert read_class_folders(str(tmp_path / "cls" / "val"), class_names=("cat", "dog")).labels == (0,)


def _write_idx(path, array):
    import gzip

    import numpy as np

    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def fashion_mnist(tmp_path):
    """A Fashion-MNIST folder as Zalando publishes it, 5 photos a class, each photo one grey level."""
    import numpy as np

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    labels = np.repeat(np.arange(10), 5)
    images = np.stack([np.full((28, 28), 10 + i, np.uint8) for i in range(len(labels))])
    _write_idx(folder / "train-images-idx3-ubyte.gz", images)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    return folder


def test_demo_classes_draws_more_training_photos_from_fashion_mnist_files_and_keeps_the_val_set(
        fashion_mnist, tmp_path, capsys):
    import numpy as np

    out = tmp_path / "classes"
    args = ["data", "demo-classes", "--out", str(out), "--fashion-mnist", str(fashion_mnist), "--train-per-class", "3"]
    assert main(args) == 0, capsys.readouterr().err
    train = read_class_folders(str(out / "train"))
    val = read_class_folders(str(out / "val"), class_names=train.class_names)
    assert set(train.counts().values()) == {3} and set(val.counts().values()) == {100}  # val: the bundled photos
    for path, label in zip(train.paths, train.labels):  # each photo the source's, in its class folder
        level = int(np.asarray(Image.open(path))[0, 0])
        assert (level - 10) // 5 == CLASS_NAMES.index(train.class_names[label].replace("_", " ")), path
    assert main(args) == 0  # the same set again: rewritten in place

    capsys.readouterr()
    for bad, says in [
        (["--out", str(tmp_path / "a"), "--fashion-mnist", str(tmp_path / "nowhere")], "train-images-idx3-ubyte.gz does not exist"),
        (["--out", str(tmp_path / "b"), "--fashion-mnist", str(fashion_mnist), "--train-per-class", "6"],
         "class 't-shirt' has 5 images, fewer than the 6"),
        (["--out", str(tmp_path / "c"), "--train-per-class", "6"], "train_per_class needs fashion_mnist"),
    ]:
        assert main(["data", "demo-classes", *bad]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert says in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    # a smaller set into a folder of a larger one would leave the larger one's photos mixed in
    assert main(["data", "demo-classes", "--out", str(tmp_path / "bundled")]) == 0
    capsys.readouterr()
    assert main(["data", "demo-classes", "--out", str(tmp_path / "bundled"), "--fashion-mnist", str(fashion_mnist),
                 "--train-per-class", "3"]) == 2
    assert "train holds 2470 files this set does not write" in capsys.readouterr().err
    (fashion_mnist / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    assert main(["data", "demo-classes", "--out", str(tmp_path / "d"), "--fashion-mnist", str(fashion_mnist)]) == 2
    assert "train-labels-idx1-ubyte.gz cannot be read as a gzipped IDX file" in capsys.readouterr().err

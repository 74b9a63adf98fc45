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

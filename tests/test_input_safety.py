"""Wrong input is refused or decoded the same everywhere: duplicate and string ids, datasets
without boxes, EXIF-rotated and 16-bit images, predict's output names, one-line errors."""
import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from mobile_spinenet.cli import main
from mobile_spinenet.data.images import decode_rgb, letterbox
from mobile_spinenet.data.readers import read_dataset
from mobile_spinenet.data.records import DataError


def _coco(tmp_path, images, annotations, categories=({"id": 1, "name": "a"},), size=(64, 48)):
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for entry in images:
        Image.new("RGB", size, (120, 80, 40)).save(folder / "images" / entry["file_name"])
    (folder / "annotations.json").write_text(json.dumps(
        {"images": list(images), "annotations": list(annotations), "categories": list(categories)}))
    return folder


def _box(ann_id, image_id, bbox=(5, 5, 20, 10)):
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": list(bbox), "iscrowd": 0}


@pytest.mark.parametrize("field, images, annotations, categories, message", [
    ("images", [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], [_box(1, 1)],
     [{"id": 1, "name": "a"}], "images ids must be unique; repeated: 1"),
    ("annotations", [{"id": 1, "file_name": "a.jpg"}], [_box(4, 1), _box(4, 1)], [{"id": 1, "name": "a"}],
     "annotations ids must be unique; repeated: 4"),
    ("categories", [{"id": 1, "file_name": "a.jpg"}], [_box(1, 1)], [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}],
     "categories ids must be unique; repeated: 1"),
])
def test_duplicate_ids_are_errors_in_train_and_data_check_alike(tmp_path, capsys, field, images, annotations,
                                                                 categories, message):
    folder = _coco(tmp_path, images, annotations, categories)
    with pytest.raises(DataError, match=message):
        read_dataset(str(folder))
    assert main(["data", "check", str(folder)]) == 2
    assert message in capsys.readouterr().err


def test_string_image_ids_are_refused_when_read_not_minutes_later(tmp_path, capsys):
    folder = _coco(tmp_path, [{"id": "img_1", "file_name": "a.jpg"}], [_box(1, "img_1")])
    with pytest.raises(DataError, match=r"images\[0\] has id 'img_1'; COCO image ids are integers"):
        read_dataset(str(folder))
    assert main(["data", "check", str(folder)]) == 2
    assert "has id 'img_1'" in capsys.readouterr().err


def test_a_dataset_without_a_single_box_is_refused(tmp_path, capsys):
    folder = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}], [])
    with pytest.raises(DataError, match="none of its 2 usable images has a usable box"):
        read_dataset(str(folder))
    assert main(["data", "check", str(folder)]) == 2


def _rotated_jpeg(path, orientation=6):
    """A 60x40 (stored) image whose left half is red, with an EXIF orientation tag."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :30] = (255, 0, 0)
    pixels[:, 30:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_by_the_reader_the_pipeline_and_predict_alike(tmp_path):
    from mobile_spinenet.backend import tf
    from mobile_spinenet.data.pipeline import _decode

    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    _rotated_jpeg(folder / "images" / "phone.jpg")  # orientation 6: displayed rotated 90 degrees clockwise
    # the box is on the displayed (40 wide, 60 high) image: its top half
    (folder / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "phone.jpg", "width": 40, "height": 60}],
        "annotations": [_box(1, 1, (2, 2, 36, 26))], "categories": [{"id": 1, "name": "a"}]}))
    dataset = read_dataset(str(folder))
    record = dataset.records[0]
    assert (record.width, record.height) == (40, 60)
    assert dataset.issues.counts["EXIF orientation"] == 1 and "size mismatch" not in dataset.issues.counts
    displayed = decode_rgb(str(folder / "images" / "phone.jpg"))
    assert displayed.shape == (60, 40, 3)
    assert displayed[10, 20, 0] > 200 and displayed[50, 20, 2] > 200  # red on top, blue below, as displayed
    decoded = _decode(tf.constant(str(folder / "images" / "phone.jpg"))).numpy()
    np.testing.assert_array_equal(decoded, displayed)  # training sees what predict and benchmark see
    square = letterbox(str(folder / "images" / "phone.jpg"), 64)
    assert square.shape == (1, 64, 64, 3) and square[0, 10, 20, 0] > 0.8 and square[0, 50, 20, 2] > 0.8


def test_16_bit_images_are_scaled_not_turned_white_by_every_command(tmp_path):
    from mobile_spinenet.backend import tf
    from mobile_spinenet.data.pipeline import _decode
    from mobile_spinenet.eval.benchmark import letterbox as benchmark_letterbox

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    path = tmp_path / "depth.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I;16")
    expected = np.round(ramp / 257.0).astype(np.uint8)
    decoded = decode_rgb(str(path))
    np.testing.assert_array_equal(decoded[..., 0], expected)
    np.testing.assert_array_equal(_decode(tf.constant(str(path))).numpy(), decoded)
    tf_reference = tf.io.decode_image(tf.io.read_file(str(path)), channels=3).numpy()  # TF's own 16->8 bits
    assert np.abs(tf_reference.astype(int) - decoded.astype(int)).max() <= 1
    square = benchmark_letterbox(str(path), 32)
    assert square.mean() < 0.1  # a ramp from black to white averages grey (0 in [-1, 1]), not white (1)
    np.testing.assert_allclose(square[0, ..., 0], expected / 127.5 - 1.0, atol=1e-6)


def test_predict_keeps_outputs_of_inputs_with_the_same_file_name_apart():
    from mobile_spinenet.eval.predict import output_names

    assert output_names(["a/cat.jpg", "b/cat.png", "dog.jpg", "c/cat.jpg"]) == [
        "cat.jpg", "cat-2.jpg", "dog.jpg", "cat-3.jpg"]


def test_predict_and_export_check_their_out_path_before_any_work(tmp_path, capsys):
    afile = tmp_path / "a_file"
    afile.write_text("x")
    image = tmp_path / "image.jpg"
    Image.new("RGB", (32, 32)).save(image)
    # the model path does not even exist: --out is checked first
    assert main(["predict", str(tmp_path / "no_run"), str(image), "--out", str(afile)]) == 2
    assert f"--out {afile} is an existing file, not a folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "no_run"), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a directory" in capsys.readouterr().err


def test_predict_never_writes_over_the_photos_or_files_it_did_not_draw(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("cat.jpg", "dog.jpg"):
        Image.new("RGB", (32, 32), (10, 20, 30)).save(photos / name)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    # the model path does not exist: the outputs are checked before any model loads
    assert main(["predict", str(tmp_path / "no_run"), str(photos), "--out", str(photos)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{photos / 'cat.jpg'} is one of the inputs" in err and len(err.splitlines()) == 1, err
    assert main(["predict", str(tmp_path / "no_run"), str(photos), "--out", str(photos), "--force"]) == 2
    assert "is one of the inputs" in capsys.readouterr().err  # not even with --force
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    (drawn / "dog.jpg").write_bytes(b"the user's own")
    assert main(["predict", str(tmp_path / "no_run"), str(photos / "dog.jpg"), "--out", str(drawn)]) == 2
    assert f"{drawn / 'dog.jpg'} exists and was not written by an earlier predict" in capsys.readouterr().err
    (drawn / "detections.json").write_text(json.dumps([{"image": "x/dog.jpg", "drawn": "elsewhere/dog.jpg"}]))
    assert main(["predict", str(tmp_path / "no_run"), str(photos / "dog.jpg"), "--out", str(drawn)]) == 2
    assert f"{tmp_path / 'no_run'} does not exist" in capsys.readouterr().err  # an earlier predict's: past the check
    (drawn / "detections.json").write_text("{}")  # not a predict record: none of the folder's files are its
    assert main(["predict", str(tmp_path / "no_run"), str(photos / "cat.jpg"), "--out", str(drawn)]) == 2
    assert f"{drawn / 'detections.json'} exists and was not written" in capsys.readouterr().err


def test_export_never_replaces_files_beside_out_that_no_export_wrote(tmp_path, capsys):
    val = tmp_path / "val"
    val.mkdir()
    (val / "annotations.json").write_text('{"images": []}')
    assert main(["export", str(tmp_path / "no_run"), "--out", str(val / "annotations.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{val / 'annotations.json'} exists and was not written by an earlier export" in err and "--force" in err
    assert (val / "annotations.json").read_text() == '{"images": []}'
    (tmp_path / "model.labels.txt").write_text("cat\n")
    assert main(["export", str(tmp_path / "no_run"), "--out", str(tmp_path / "model.tflite")]) == 2
    assert "model.labels.txt exists and was not written" in capsys.readouterr().err
    (tmp_path / "model.json").write_text(json.dumps({"model": "spinenet49xs", "quant": "int8", "ops": {}}))
    (tmp_path / "model.tflite").write_bytes(b"an earlier export")
    for force in ([], ["--force"]):  # an earlier export's files, or --force: on to the run (which is missing)
        assert main(["export", str(tmp_path / "no_run"), "--out", str(tmp_path / "model.tflite")] + force) == 2
        assert "no_run" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "no_run"), "--out", str(val / "annotations.tflite"), "--force"]) == 2
    assert "annotations.json exists" not in capsys.readouterr().err


def test_odd_annotation_values_are_skipped_by_name_not_crashed_on_or_misread(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": 12345, "width": 64, "height": 48}]
    annotations = [_box(1, 1), {**_box(2, 1), "category_id": 1.7}, {**_box(3, 1), "image_id": [1]},
                   {**_box(4, 1), "bbox": [1, float("nan"), 11, float("nan")]}, {**_box(5, 1), "category_id": 1.0}]
    folder = _coco(tmp_path, images[:1], annotations)
    coco = json.loads((folder / "annotations.json").read_text())
    coco["images"] = images
    (folder / "annotations.json").write_text(json.dumps(coco))
    dataset = read_dataset(str(folder))
    assert len(dataset) == 1 and len(dataset.records[0].boxes) == 2  # annotations 1 and 5 (1.0 is category 1)
    text = "\n".join(dataset.issues.messages)
    assert "images[1] has file_name 12345, not a file name" in text
    assert "annotation 2 has category id 1.7" in text and "annotation 3 has image_id [1]" in text
    assert "annotation 4 has bbox [1, nan, 11, nan]" in text


def test_a_decompression_bomb_is_skipped_by_the_reader_and_refused_by_the_decoder(tmp_path):
    import struct
    import zlib

    folder = _coco(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
                              {"id": 2, "file_name": "bomb.png", "width": 20000, "height": 20000}],
                   [_box(1, 1)])
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # a PNG header claiming 20000x20000
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    bomb = folder / "images" / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    dataset = read_dataset(str(folder))
    assert len(dataset) == 1 and dataset.issues.counts["too large"] == 1
    with pytest.raises(ValueError, match="bomb.png is too large to decode"):  # predict's and the pipeline's decoder
        decode_rgb(str(bomb))


def test_a_truncated_image_is_found_by_data_check_dropped_in_training_and_named_in_eval(tmp_path, capsys):
    from mobile_spinenet.cli import kit_error_inside
    from mobile_spinenet.data.pipeline import InputConfig, eval_dataset, train_dataset

    folder = _coco(tmp_path, [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in (1, 2, 3)],
                   [_box(i, i) for i in (1, 2, 3)])
    broken = folder / "images" / "2.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(broken, quality=95)
    content = broken.read_bytes()
    broken.write_bytes(content[:len(content) * 2 // 3])  # the header whole, the scan cut short
    assert main(["data", "check", str(folder)]) == 0  # decodes every image by default
    assert "corrupt image" in capsys.readouterr().out
    headers_only = read_dataset(str(folder), full_check=False)  # what a set above 5,000 images gets
    assert len(headers_only) == 3
    batches = list(train_dataset(headers_only, np.zeros([1, 4], np.float32), InputConfig(image_size=64, batch_size=1),
                                 epoch=0))
    assert len(batches) == 2  # the broken image is dropped, the others train
    with pytest.raises(Exception) as error:
        list(eval_dataset(headers_only, 64))
    assert kit_error_inside(error.value).startswith(f"{broken} is not a readable image")


def test_eval_of_a_file_that_is_no_model_names_the_file(tmp_path, capsys):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(os.urandom(4096))
    assert main(["eval", str(junk), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{junk} is not a loadable .tflite file" in err and "Traceback" not in err


def test_checkpoint_write_failure_is_one_line_and_leaves_no_temp_folder(tmp_path):
    from mobile_spinenet.training.checkpoints import AtomicCheckpoints, CheckpointWriteError

    class FullDisk:
        def __init__(self):
            self.calls = 0

        def write(self, prefix):
            self.calls += 1
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            with open(prefix + ".index", "w") as f:
                f.write("half")
            if self.calls > 1:
                raise OSError(errno.ENOSPC, "No space left on device", prefix)

    checkpoints = AtomicCheckpoints(str(tmp_path / "checkpoints"), FullDisk())
    checkpoints.save(1)
    with pytest.raises(CheckpointWriteError) as error:
        checkpoints.save(2)
    message = str(error.value)
    assert "cannot write checkpoint step-00000002" in message and "No space left on device" in message
    assert "step-00000001" in message and "\n" not in message
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["latest", "step-00000001"]
    assert checkpoints.latest().endswith("step-00000001/ckpt")


def test_benchmark_refuses_bad_counts_and_reports_a_truncated_file_in_one_line(tmp_path, capsys):
    from mobile_spinenet.backend import keras, tf

    inputs = keras.Input((32, 32, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    function = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, 32, 32, 3], tf.float32))
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([function], model).convert()
    whole, truncated = tmp_path / "whole.tflite", tmp_path / "truncated.tflite"
    whole.write_bytes(flatbuffer)
    truncated.write_bytes(flatbuffer[: len(flatbuffer) // 2])
    for args, message in ((["--threads", "0"], "--threads takes thread counts of 1 or more, got 0"),
                          (["--runs", "0"], "argument --runs: must be >= 1, got 0")):
        with pytest.raises(SystemExit) if args[0] == "--runs" else _no_raise():
            assert main(["benchmark", str(whole), *args]) == 2
        assert message in capsys.readouterr().err
    assert main(["benchmark", str(truncated), "--threads", "1", "--runs", "2"]) == 2
    err = capsys.readouterr().err
    assert str(truncated) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("scale, resize", [(1, "letterbox"), (5, "letterbox"), (1, "stretch")])
def test_predict_and_benchmark_preprocess_exactly_as_evaluation_does(tmp_path, scale, resize):
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.pipeline import eval_dataset

    make_split(str(tmp_path / "d"), "val", 2, seed=2)
    if scale != 1:  # a large photo: a 5x downscale, where PIL's antialiasing bilinear differs most
        for path in (tmp_path / "d" / "images").iterdir():
            image = Image.open(path)
            image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(path, quality=95)
    dataset = read_dataset(str(tmp_path / "d"))
    for (batch, _, _), record in zip(eval_dataset(dataset, 128, 1, resize=resize), dataset.records):
        np.testing.assert_allclose(letterbox(record.path, 128, resize), batch.numpy(), atol=1e-6)


def test_stretch_fills_the_square_and_scales_boxes_per_axis():
    from mobile_spinenet.data.pipeline import resize_and_pad
    from mobile_spinenet.eval.detector_eval import to_original_pixels

    image = np.full((100, 200, 3), 255, np.uint8)
    boxes = np.array([[10, 20, 50, 120]], np.float32)
    padded, scaled, undo = resize_and_pad(image, boxes, 128, resize="stretch")
    assert np.allclose(padded.numpy(), 1.0)  # no padding at all
    np.testing.assert_allclose(scaled.numpy(), boxes * [1.28, 0.64, 1.28, 0.64], rtol=1e-6)
    scale_y, scale_x = float(undo[0]), float(undo[3])
    assert (scale_y, scale_x) == pytest.approx((1.28, 0.64))
    np.testing.assert_allclose(to_original_pixels(scaled.numpy(), (scale_y, scale_x), 200, 100), boxes, rtol=1e-5)
    _, letterboxed, undo = resize_and_pad(image, boxes, 128)
    assert float(undo[0]) == float(undo[3]) == pytest.approx(0.64)
    with pytest.raises(ValueError, match="--resize must be letterbox or stretch, got 'squash'"):
        resize_and_pad(image, boxes, 128, resize="squash")


def test_data_demo_rewrites_its_own_folders_but_not_a_users_dataset(tmp_path, capsys):
    _coco(tmp_path / "mine", [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}], [_box(1, 1)])
    target = tmp_path / "mine"
    (target / "data").rename(target / "train")
    before = (target / "train" / "annotations.json").read_text()
    assert main(["data", "demo", "--out", str(target), "--train-images", "2", "--val-images", "1"]) == 2
    assert f"{target / 'train'} exists and was not written by an earlier data demo" in capsys.readouterr().err
    assert (target / "train" / "annotations.json").read_text() == before and not (target / "val").exists()
    demo = tmp_path / "demo"
    for _ in range(2):  # an earlier demo's folders: rewritten
        assert main(["data", "demo", "--out", str(demo), "--train-images", "2", "--val-images", "1"]) == 0
    assert (target / "train" / "annotations.json").read_text() == before


def test_an_export_that_fails_to_write_leaves_no_file_without_its_report(tmp_path, monkeypatch):
    import mobile_spinenet.io_utils as io_utils
    from mobile_spinenet.quantization.export import write_export

    written = io_utils.write_atomically

    def full_disk_at(name):
        def write(path, data):
            if path.endswith(name):
                raise OSError(errno.ENOSPC, "No space left on device", path)
            return written(path, data)
        return write

    out = str(tmp_path / "m.tflite")
    for failing in ("m.json", "m.tflite"):
        monkeypatch.setattr(io_utils, "write_atomically", full_disk_at(failing))
        with pytest.raises(OSError, match="No space left"):
            write_export(out, b"flatbuffer", ["cat"], {"model": "x", "quant": "int8", "ops": {}})
        assert sorted(os.listdir(tmp_path)) == []  # nothing half-written stays
    monkeypatch.setattr(io_utils, "write_atomically", written)
    write_export(out, b"first", ["cat"], {"model": "x", "quant": "int8", "ops": {}})
    monkeypatch.setattr(io_utils, "write_atomically", full_disk_at("m.tflite"))
    with pytest.raises(OSError):
        write_export(out, b"second", ["dog"], {"model": "x", "quant": "int8", "ops": {}})
    assert open(out, "rb").read() == b"first" and os.path.exists(tmp_path / "m.json")  # an earlier export stays


SHORT_EPOCH_RUN = r"""
import sys
from mobile_spinenet.data.readers import read_dataset
from mobile_spinenet.training.config import load_config
from mobile_spinenet.training.trainer import Trainer
data = read_dataset(sys.argv[1], full_check=False)
config = load_config("mnv3_small_ssdlite", overrides=dict(image_size=128, batch_size=2, epochs=3, learning_rate=0.01,
                     warmup_epochs=0, precise_bn_images=int(sys.argv[3]), seed=0, checkpoint_every_steps=100))
row = Trainer(config, data, sys.argv[2], show_progress=False).fit()
print("finished", row["step"], row["epoch"])
"""


def test_an_image_that_fails_to_decode_in_training_leaves_every_epoch_its_steps(tmp_path):
    """A truncated image in a set read header-only (as sets above 5,000 images are) is dropped from
    its batch; its epoch is then a batch short. The loop used to restart such an epoch at the step
    it reached, and when the image sat in the epoch's last batch the restart had no full batch
    left and the run repeated that epoch forever. Now the epoch takes the batch from its start.
    The batch-norm re-estimate over training images stopped the run at that image; it now drops
    it with a warning, as training does."""
    import subprocess
    import sys

    from mobile_spinenet.data.pipeline import epoch_order

    folder = _coco(tmp_path, [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(1, 9)],
                   [_box(i, i) for i in range(1, 9)])
    records = read_dataset(str(folder)).records
    broken = records[epoch_order(len(records), 0, 0)[7]].path  # in epoch 1's last batch (batch 2, 4 steps)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(broken, quality=95)
    content = open(broken, "rb").read()
    open(broken, "wb").write(content[:len(content) * 2 // 3])  # the header whole, the scan cut short
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    for bn_images in (0, 8):  # the loop alone, then with batch norm re-estimated over every image, the broken one too
        run = tmp_path / f"run-{bn_images}"
        done = subprocess.run([sys.executable, "-c", SHORT_EPOCH_RUN, str(folder), str(run), str(bn_images)], env=env,
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "finished 12 3"  # 3 epochs of 4 steps, each epoch once
        rows = (run / "metrics.csv").read_text().strip().splitlines()
        assert [row.split(",")[:2] for row in rows[1:]] == [["1", "4"], ["2", "8"], ["3", "12"]]

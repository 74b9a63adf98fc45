"""`mobile-spinenet benchmark`: every field, in text and JSON, for each thread count."""
import json

import pytest

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.cli import main
from mobile_spinenet.eval.benchmark import FIELDS


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    inputs = keras.Input((64, 64, 3), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs))
    function = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([1, 64, 64, 3], tf.float32))
    path = tmp_path_factory.mktemp("bench") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([function], model).convert())
    return str(path)


def test_benchmark_prints_every_field_as_json(tiny_tflite, capsys):
    assert main(["benchmark", tiny_tflite, "--threads", "1,2", "--runs", "5", "--warmup", "1", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["threads"] for r in results] == [1, 2]
    for result in results:
        assert set(FIELDS) <= set(result)
        assert 0 < result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
        assert result["end_to_end_median_ms"] > 0 and result["peak_rss_mb"] > 10 and result["model_mb"] > 0
        assert result["delegation"] == {"partitions": 1, "outside": {}}  # XNNPACK takes conv + relu


def test_benchmark_prints_a_text_table_and_names_bad_input(tiny_tflite, capsys):
    assert main(["benchmark", tiny_tflite, "--threads", "1", "--runs", "3", "--delegate", "none"]) == 0
    out = capsys.readouterr().out
    for column in ("init ms", "first ms", "median ms", "p90 ms", "min ms", "end-to-end ms", "peak RSS MB", "size MB"):
        assert column in out
    assert "| 1 | none |" in out and "XNNPACK:" not in out
    assert main(["benchmark", tiny_tflite, "--threads", "1", "--runs", "3"]) == 0
    assert "XNNPACK: 1 partition(s); ops left to the builtin kernels: none" in capsys.readouterr().out
    assert main(["benchmark", tiny_tflite, "--threads", "one"]) == 2
    assert "--threads takes comma-separated whole numbers, got 'one'" in capsys.readouterr().err


def test_interleaved_benchmark_keeps_every_round_and_reports_the_median_one(tiny_tflite, tmp_path):
    import shutil

    from mobile_spinenet.eval.benchmark import benchmark_interleaved

    other = str(tmp_path / "other.tflite")
    shutil.copy(tiny_tflite, other)
    measured = benchmark_interleaved([tiny_tflite, other], threads=(1, 2), runs=3, warmup=1, rounds=3)
    assert set(measured) == {tiny_tflite, other}
    for entries in measured.values():
        assert [e["threads"] for e in entries] == [1, 2]
        for entry in entries:
            assert entry["rounds"] == 3 and len(entry["round_medians_ms"]) == 3
            assert entry["median_ms"] == sorted(entry["round_medians_ms"])[1]


def test_several_files_are_timed_together_and_compared_with_the_first(tiny_tflite, tmp_path, capsys):
    import shutil

    other = str(tmp_path / "other.tflite")
    shutil.copy(tiny_tflite, other)
    args = ["--threads", "1", "--runs", "3", "--warmup", "1", "--rounds", "2"]
    assert main(["benchmark", tiny_tflite, other, *args, "--json"]) == 0, capsys.readouterr().err
    measured = json.loads(capsys.readouterr().out)
    assert list(measured) == [tiny_tflite, other]
    assert all(entry["rounds"] == 2 and len(entry["round_medians_ms"]) == 2 for entry in measured[other])
    assert main(["benchmark", tiny_tflite, other, *args]) == 0
    out = capsys.readouterr().out
    assert "median / reference" in out and "| tiny.tflite | 1 |" in out and "| other.tflite | 1 |" in out
    assert "2 files timed in 2 interleaved rounds" in out
    for bad, message in (([tiny_tflite, tiny_tflite], "a file is named twice"),
                         ([tiny_tflite, str(tmp_path / "missing.tflite")], "missing.tflite does not exist"),
                         ([tiny_tflite, other, "--profile"], "--profile takes one file"),
                         ([tiny_tflite, "--rounds", "2"], "--rounds interleaves several files")):
        assert main(["benchmark", *bad]) == 2
        assert message in capsys.readouterr().err


def test_the_comparison_gives_each_file_as_a_ratio_of_the_first_files_median():
    from mobile_spinenet.eval.benchmark import format_comparison

    def entries(median, end_to_end):
        return [{"threads": 1, "median_ms": median, "end_to_end_median_ms": end_to_end, "rounds": 3},
                {"threads": 2, "median_ms": median / 2, "end_to_end_median_ms": end_to_end / 2, "rounds": 3}]

    table = format_comparison({"/x/raw.tflite": entries(4.0, 5.0), "/x/phone.tflite": entries(4.4, 6.0)})
    assert "| raw.tflite | 1 | 4.00 | 5.00 | 1.00 | 1.25 |" in table
    assert "| phone.tflite | 1 | 4.40 | 6.00 | 1.10 | 1.50 |" in table
    assert "| phone.tflite | 2 | 2.20 | 3.00 | 1.10 | 1.50 |" in table  # against the same thread count


@pytest.mark.slow  # six QAT int8 exports and their benchmarks: ~4 min on 2 cores
def test_bench_activations_exports_the_qat_way_and_times_each_activation(capsys):
    assert main(["bench", "activations", "--models", "spinenet49xxs", "--activations", "hard_swish", "--image-size",
                 "128", "--threads", "1", "--runs", "3", "--rounds", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["model"], row["activation"]) == ("spinenet49xxs", "hard_swish") and row["median_ms"]["1"] > 0
    assert len(row["round_medians_ms"]["1"]) == 2
    # hard-swish is int8 ADD/MUL that XNNPACK takes; SpineNet's nearest upsampling stays outside it
    assert row["delegation"]["outside"] == {"RESIZE_NEAREST_NEIGHBOR": 5}  # raw outputs: no post-processing op
    assert main(["bench", "activations", "--activations", "gelu"]) == 2
    assert "--activations: unknown gelu" in capsys.readouterr().err


def test_latency_variants_are_parsed_and_given_only_to_models_that_take_them():
    from mobile_spinenet.eval.latency_variants import check_variants, parse_variants, variant_label

    variants = parse_variants("paper,channel_divisor=8,se_ratio=0+activation=relu")
    assert variants == [{}, {"channel_divisor": 8}, {"se_ratio": 0.0, "activation": "relu"}]
    assert [variant_label(v) for v in variants] == ["paper", "channel_divisor=8", "se_ratio=0.0+activation=relu"]
    pairs = check_variants(["spinenet49xs", "mnv3_large_ssdlite"], variants)
    assert pairs == [("spinenet49xs", {}), ("spinenet49xs", {"channel_divisor": 8}),
                     ("spinenet49xs", {"se_ratio": 0.0, "activation": "relu"}), ("mnv3_large_ssdlite", {})]
    with pytest.raises(ValueError, match="no model of --models takes channel_divisor=8"):
        check_variants(["mnv3_large_ssdlite"], variants)
    for bad, message in (("depth=3", "is not OPTION=VALUE"), ("channel_divisor=eight", "takes a int"), ("", "at least one")):
        with pytest.raises(ValueError, match=message):
            parse_variants(bad)
    assert main(["bench", "variants", "--models", "mnv3_small_ssdlite", "--variants", "se_ratio=0"]) == 2

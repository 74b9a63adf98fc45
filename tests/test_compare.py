"""The comparison report: epochs from a time budget, the table, the latency-per-multiply-add
ratios and the plots (the end-to-end `compare` run is in tests/test_compare_slow.py)."""
import hashlib
import json
import os

import pytest

from mobile_spinenet.data.readers import split_folders
from mobile_spinenet.eval.compare import CompareOptions, ModelResult, plan_epochs
from mobile_spinenet.eval.compare_report import pair_ratios, table_rows, write_report


def _result(model, madds, ms1, ms2, float_ap, int8_ap, passed=True):
    return {"model": model, "minutes": {"train": 1.0},
            "training": {"epochs": 4.0}, "qat": {"epochs": 0.5}, "float": {"AP": float_ap, "AP50": 2 * float_ap},
            "int8": {"tflite_AP": int8_ap, "tflite_AP50": 2 * int8_ap, "keras_AP": float_ap, "passed": passed,
                     "mb": 1.5},
            "benchmark": [{"threads": 1, "median_ms": ms1}, {"threads": 2, "median_ms": ms2}],
            "counts": {"params": 1_000_000, "multiply_adds": madds, "image_size": 256, "num_classes": 10}}


RESULTS = [_result("spinenet49xs", 0.4e9, 8.0, 5.0, 3.0, 2.5), _result("mnv3_large_ssdlite", 0.2e9, 2.0, 1.25, 2.0, 1.0),
           _result("spinenet49xxs", 0.15e9, 3.0, 2.0, 1.0, 0.9, passed=False)]
RESULTS[0]["benchmark_raw"] = [{"threads": 1, "median_ms": 6.0}, {"threads": 2, "median_ms": 4.0}]
RESULTS[1]["benchmark_raw"] = [{"threads": 1, "median_ms": 1.0}, {"threads": 2, "median_ms": 0.5}]
RESULTS[1]["benchmark"][0]["delegation"] = {"partitions": 3, "outside": {"HARD_SWISH": 2, "TFLite_Detection_PostProcess": 1}}
SETTINGS = {"data": "d/train", "val": "d/val", "budget_minutes": 2.0, "image_size": 256, "recipe": "cpu_demo",
            "qat_share": 0.125, "threads": [1, 2], "bench_runs": 50}


def test_plan_epochs_fits_the_budget():
    # 800 images at 40 images/s = 20 s per epoch, plus 5 s overhead: 120 s hold 4.8 epochs
    assert plan_epochs(120, 40.0, 800, 5.0) == pytest.approx(4.8)
    assert plan_epochs(1, 40.0, 800, 5.0) == 0.1  # never zero


def test_latency_per_multiply_add_ratio_of_the_table9_pair():
    rows = table_rows(RESULTS, (1, 2))
    (ratio,) = pair_ratios(rows, (1, 2))  # spinenet49xxs has no SSDLite partner here
    assert (ratio["spinenet"], ratio["ssdlite"]) == ("spinenet49xs", "mnv3_large_ssdlite")
    assert ratio["multiply_add_ratio"] == pytest.approx(2.0)
    assert ratio["latency_ratio"][1] == pytest.approx(4.0)
    assert ratio["ms_per_gmac_ratio"][1] == pytest.approx(2.0)  # (8 ms / 0.4 B) / (2 ms / 0.2 B)
    assert rows[0]["ap_per_ms"] == pytest.approx(2.5 / 8.0)


def test_report_has_the_table_reference_rows_ratio_and_plots(tmp_path):
    path = write_report(str(tmp_path), RESULTS, SETTINGS)
    text = open(path).read()
    assert "| spinenet49xs | 256 | 1.00 | 0.400 | 3.00 | 2.50 | 1.50 | 8.00 | 5.00 | 6.00 | 4.00 | 0.312 |" in text
    assert "| 3.00 | 2.00 | – | – | 0.300 |" in text  # spinenet49xxs: no raw-output file was timed
    assert "*paper Table 9: spinenet49xs* | 384 | 1.01 | 0.52 | *23.7 COCO*" in text
    assert "*paper Table 9: mnv3_small_ssdlite*" not in text  # only the compared models' rows
    assert "0.90 (rejected)" in text
    assert ("- mnv3_large_ssdlite: XNNPACK: 3 partition(s); ops left to the builtin kernels: HARD_SWISH x2, "
            "TFLite_Detection_PostProcess x1") in text
    # network-only: (6 ms / 0.4 B) / (1 ms / 0.2 B) = 3 at 1 thread, (4 / 0.4) / (0.5 / 0.2) = 4 at 2
    assert "| spinenet49xs / mnv3_large_ssdlite | 2.00 | 4.00 | 4.00 | 2.00 | 2.00 | **3.00** | **4.00** |" in text
    for name in ("ap_vs_multiply_adds.png", "ap_vs_latency.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "report.json").read_text())["ratios"][0]["ssdlite"] == "mnv3_large_ssdlite"


def test_report_says_when_the_float_models_were_reused_not_trained_for_the_budget(tmp_path):
    # the main job reuses the demo checkpoints: its report described a 2-minute budget it never ran
    text = open(write_report(str(tmp_path), RESULTS, SETTINGS)).read()
    assert "2 min of float training" in text and "finished runs" not in text
    reused = {**SETTINGS, "models": 3, "reused_runs": {"spinenet49xs": "checkpoints/demo/spinenet49xs",
                                                       "mnv3_large_ssdlite": "checkpoints/demo/mnv3_large_ssdlite"}}
    text = open(write_report(str(tmp_path / "reused"), RESULTS, reused)).read()
    assert "the finished runs `checkpoints/demo/spinenet49xs`, `checkpoints/demo/mnv3_large_ssdlite`, reused" in text
    assert "The other models: recipe `cpu_demo` at 256 px, 2 min of float training" in text
    everything = {**reused, "models": 2}
    assert "min of float training" not in open(write_report(str(tmp_path / "all"), RESULTS, everything)).read()


def test_report_shows_float_ptq_and_qat_ap_when_the_extra_exports_ran(tmp_path):
    # compare --extra-exports ptq,fp32 recorded the files' AP, but the report never showed it
    assert "## Float, PTQ int8 and QAT int8 AP" not in open(write_report(str(tmp_path), RESULTS, SETTINGS)).read()
    results = json.loads(json.dumps(RESULTS))
    results[0]["int8"]["agreement"] = 1.0
    results[0]["ptq"] = {"tflite_AP": 2.25, "passed": True, "agreement": 0.98, "mb": 2.0}
    results[0]["fp32"] = {"tflite_AP": 3.0, "passed": True, "agreement": 1.0, "mb": 4.5}
    results[1]["ptq"] = {"tflite_AP": 0.5, "passed": False, "agreement": 0.3, "mb": 2.9}
    text = open(write_report(str(tmp_path / "extra"), results, SETTINGS)).read()
    assert "## Float, PTQ int8 and QAT int8 AP" in text
    # spinenet49xs: float 3.00, QAT int8 2.50 (QAT Keras 3.00)
    assert "| spinenet49xs | 3.00 | 3.00 | 2.25 | -0.75 | 98.0% | 2.50 (3.00) | -0.50 | 100.0% | 4.50 | 2.00 | 1.50 |" in text
    assert "| mnv3_large_ssdlite | 2.00 | – | 0.50 (rejected) | -1.50 | 30.0% | 1.00 (2.00) | -1.00 | – | – | 2.90 |" in text


def test_model_result_resumes_from_its_file(tmp_path):
    path = str(tmp_path / "results" / "m.json")
    first = ModelResult(path, "m")
    with first.stage("train"):
        pass
    first.record("training", {"epochs": 3})
    again = ModelResult(path, "m")
    assert again.has("training") and not again.has("qat") and "train" in again["minutes"]


def test_bad_options_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match="no train/ and val/"):
        split_folders(str(tmp_path), None)
    with pytest.raises(ValueError, match="twice"):
        CompareOptions("d", "o", ("spinenet49xs", "spinenet49xs")).validate()
    with pytest.raises(ValueError, match="unknown|model"):
        CompareOptions("d", "o", ("spinenet4",)).validate()
    with pytest.raises(ValueError, match="--extra-exports"):
        CompareOptions("d", "o", ("spinenet49xs",), extra_exports=("int4",)).validate()


def test_an_image_size_that_a_reused_run_was_not_trained_at_is_refused_before_any_work(tmp_path, capsys):
    from mobile_spinenet.cli import main

    checkpoints = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "demo")
    args = ["compare", "--data", str(tmp_path / "nothing"), "--runs-from", checkpoints, "--models",
            "spinenet49xxs,mnv3_small_ssdlite", "--out", str(tmp_path / "out")]
    assert main(args + ["--image-size", "320"]) == 2  # the runs are 256 px ones
    err = capsys.readouterr().err.strip()
    assert "--image-size 320" in err and "spinenet49xxs" in err and "trained at 256 px" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
    options = CompareOptions("d", "o", ("spinenet49xxs",), runs_from=checkpoints)
    options.check_reused_sizes()  # no size asked: the runs' own
    CompareOptions("d", "o", ("spinenet49xxs",), runs_from=checkpoints, image_size=256).check_reused_sizes()
    assert options.training_size == 256 and CompareOptions("d", "o", image_size=320).training_size == 320


def test_compare_command_passes_every_flag_to_its_options(tmp_path, capsys, monkeypatch):
    import mobile_spinenet.eval.compare as compare_module
    from mobile_spinenet.cli import main

    assert main(["compare", "--data", "d", "--out", "o", "--rounds", "0"]) == 2  # validated before anything runs
    assert "--rounds and --runs must be at least 1, got 0 and 50" in capsys.readouterr().err
    seen, report = {}, tmp_path / "report.md"
    report.write_text("the report")
    monkeypatch.setattr(compare_module, "compare", lambda options, progress: seen.setdefault("options", options) and str(report))
    assert main(["compare", "--data", "d", "--val", "v", "--out", "o", "--models", "spinenet49xxs", "--budget", "1.5",
                 "--image-size", "128", "--qat-share", "0.5", "--threads", "1", "--runs", "7", "--rounds", "2",
                 "--extra-exports", "ptq", "--runs-from", "r", "--verify-images", "9", "--seed-spread", "s.json",
                 "--no-progress"]) == 0
    options = seen["options"]
    assert (options.data, options.val, options.out, options.models, options.budget_minutes, options.image_size) == \
        ("d", "v", "o", ("spinenet49xxs",), 1.5, 128)
    assert (options.qat_share, options.threads, options.bench_runs, options.bench_rounds, options.extra_exports) == \
        (0.5, (1,), 7, 2, ("ptq",))
    assert (options.runs_from, options.verify_images, options.show_progress) == ("r", 9, False)
    assert options.seed_spread == "s.json"


def test_mean_sd_and_the_two_sd_rule():
    from mobile_spinenet.eval.significance import mean_and_sd, significance

    mean, sd = mean_and_sd([1.0, 2.0, 3.0])
    assert (mean, sd) == (2.0, 1.0)  # sample sd (n - 1)
    assert mean_and_sd([4.0]) == (4.0, None)
    # sd 0.3 and 0.4 combine to 0.5: a difference of 0.9 is under 2 sd (1.0), 1.1 is over it
    assert significance(10.9, 0.3, 10.0, 0.4) == pytest.approx({"difference": 0.9, "threshold": 1.0,
                                                                "significant": False})
    assert significance(11.1, 0.3, 10.0, 0.4)["significant"] is True
    assert significance(11.1, None, 10.0, 0.4)["significant"] is None


def _seeds_record(values: dict) -> dict:
    return {"runs": {model: {str(k): {"seed": k, "tflite_AP": v, "tflite_AP50": 2 * v, "keras_AP": v + 0.1}
                             for k, v in enumerate(aps, 1)} for model, aps in values.items()},
            "settings": {"runs_from": "c", "qat_epochs": 0.25, "seeds": [1, 2, 3], "val_images": 200}}


def test_report_marks_ap_differences_under_two_sd_as_not_significant(tmp_path):
    from mobile_spinenet.eval.significance import spread_of

    results = [_result("spinenet49xs", 0.4e9, 8.0, 5.0, 3.0, 2.5), _result("mnv3_large_ssdlite", 0.2e9, 2, 1, 2.0, 1.0),
               _result("spinenet49xxs", 0.15e9, 3.0, 2.0, 1.0, 2.6), _result("mnv3_small_ssdlite", 0.1e9, 1, 1, 1, 2.0)]
    spread = spread_of(_seeds_record({"spinenet49xs": [2.4, 2.5, 2.6], "mnv3_large_ssdlite": [0.9, 1.0, 1.1],
                                      "spinenet49xxs": [2.0, 2.6, 3.2], "mnv3_small_ssdlite": [1.4, 2.0, 2.6]}))
    assert spread["spinenet49xs"]["tflite_AP"]["sd"] == pytest.approx(0.1)
    text = open(write_report(str(tmp_path), results, {**SETTINGS, "seed_spread": "s.json"}, spread)).read()
    assert "| 3.00 | 2.50 ± 0.10 | 1.50 |" in text
    # 49xs vs large: 1.5 apart, 2 sd = 2 * sqrt(0.01 + 0.01) = 0.28; 49xxs vs small: 0.6 apart, 2 sd = 1.70
    assert "| spinenet49xs / mnv3_large_ssdlite | 2.50 | 1.00 | +1.50 | 0.28 | **significant** |" in text
    assert "| spinenet49xxs / mnv3_small_ssdlite | 2.60 | 2.00 | +0.60 | 1.70 | not significant (under 2 sd) |" in text
    unknown = open(write_report(str(tmp_path / "none"), results, SETTINGS)).read()
    assert "unknown: no seed spread" in unknown and "±" not in unknown


def test_seed_spread_runs_each_missing_seed_once_and_resumes(tmp_path, monkeypatch):
    import mobile_spinenet.eval.compare as compare_module
    import mobile_spinenet.quantization.qat_run as qat_module
    from mobile_spinenet.eval.seed_spread import SeedSpreadOptions, seed_spread
    from mobile_spinenet.eval.significance import read_seeds

    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    (tmp_path / "runs" / "spinenet49xxs").mkdir(parents=True)
    (tmp_path / "runs" / "spinenet49xxs" / "run.json").write_text("{}")
    (tmp_path / "runs" / "spinenet49xxs" / "model.weights.h5").write_bytes(b"the float weights")
    calls = []

    def fake_qat(float_dir, train_dir, qat_dir, options):
        calls.append(("qat", options.seed, options.epochs) + (("frozen BN",) if options.freeze_bn else ()))

    def fake_export(run_dir, path, quant, val_dir, images, progress):
        seed = int(run_dir.rsplit("seed", 1)[1])
        calls.append(("export", seed))
        if seed == 3:
            raise KeyboardInterrupt  # killed during the third seed
        return {"tflite_AP": 20.0 + seed, "tflite_AP50": 40.0, "keras_AP": 21.0, "passed": True, "agreement": 1.0,
                "images": images}

    monkeypatch.setattr(qat_module, "qat", fake_qat)
    monkeypatch.setattr(compare_module, "export_verified", fake_export)
    options = SeedSpreadOptions(runs_from=str(tmp_path / "runs"), data=str(tmp_path / "data"), out=str(tmp_path / "out"),
                                models=("spinenet49xxs",), seeds=(1, 2, 3), qat_epochs=0.5, verify_images=10)
    with pytest.raises(KeyboardInterrupt):
        seed_spread(options, progress=lambda message: None)
    assert sorted(read_seeds(str(tmp_path / "out" / "seeds.json"))["runs"]["spinenet49xxs"]) == ["1", "2"]
    calls.clear()
    monkeypatch.setattr(compare_module, "export_verified",
                        lambda run_dir, path, quant, val_dir, images, progress: {
                            "tflite_AP": 23.0, "tflite_AP50": 40.0, "keras_AP": 21.0, "passed": True, "agreement": 1.0,
                            "images": images})
    record = seed_spread(options, progress=lambda message: None)
    assert calls == [("qat", 3, 0.5)]  # only the missing seed
    assert [record["runs"]["spinenet49xxs"][k]["tflite_AP"] for k in ("1", "2", "3")] == [21.0, 22.0, 23.0]
    assert "| spinenet49xxs | 3 | 22.00 | 1.00 |" in (tmp_path / "out" / "seeds.md").read_text()
    digest = hashlib.sha256(b"the float weights").hexdigest()[:16]
    assert record["float_weights"] == {"spinenet49xxs": digest}
    assert f"spinenet49xxs `{digest}`" in (tmp_path / "out" / "seeds.md").read_text()
    with pytest.raises(ValueError, match="measured with other settings \\(qat_epochs\\)"):
        seed_spread(SeedSpreadOptions(**{**options.__dict__, "qat_epochs": 1.0}), progress=lambda message: None)
    frozen = SeedSpreadOptions(**{**options.__dict__, "freeze_bn": True})
    with pytest.raises(ValueError, match="measured with other settings \\(freeze_bn\\)"):
        seed_spread(frozen, progress=lambda message: None)
    # a seeds.json from before the setting existed was measured without frozen BN: it resumes as such
    path = tmp_path / "out" / "seeds.json"
    older = json.loads(path.read_text())
    del older["settings"]["freeze_bn"]
    path.write_text(json.dumps(older))
    assert seed_spread(options, progress=lambda message: None)["settings"]["freeze_bn"] is False
    calls.clear()
    seed_spread(SeedSpreadOptions(**{**frozen.__dict__, "out": str(tmp_path / "frozen"), "seeds": (1, 2)}),
                progress=lambda message: None)
    assert calls == [("qat", 1, 0.5, "frozen BN"), ("qat", 2, 0.5, "frozen BN")]
    assert "with its BN layers frozen" in (tmp_path / "frozen" / "seeds.md").read_text()
    # the float run retrained since: its new seeds would not be one spread with the old ones
    (tmp_path / "runs" / "spinenet49xxs" / "model.weights.h5").write_bytes(b"retrained float weights")
    calls.clear()
    with pytest.raises(ValueError, match="seeds of spinenet49xxs were measured on other float weights"):
        seed_spread(SeedSpreadOptions(**{**options.__dict__, "seeds": (1, 2, 3, 4)}), progress=lambda message: None)
    assert calls == []  # refused before any work
    del older["float_weights"]  # a seeds.json from before the weights were recorded cannot tell
    path.write_text(json.dumps(older))
    with pytest.raises(ValueError, match="measured on float weights it does not name"):
        seed_spread(options, progress=lambda message: None)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="--seed-spread .*bad.json is not a seeds.json"):
        read_seeds(str(tmp_path / "bad.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"runs": {}, "float_weights": ["abc"]}))
    with pytest.raises(ValueError, match="bad.json: \"float_weights\" must map model ids"):
        read_seeds(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="at least two different seeds"):
        SeedSpreadOptions(**{**options.__dict__, "seeds": (1,)}).validate()
    with pytest.raises(ValueError, match="has no finished run mnv3_small_ssdlite/"):
        SeedSpreadOptions(**{**options.__dict__, "models": ("mnv3_small_ssdlite",)}).validate()


def test_seed_spread_with_float_layers_passes_them_to_every_qat_and_refuses_a_pattern_before_any_work(
        tmp_path, monkeypatch, capsys):
    import mobile_spinenet.eval.compare as compare_module
    import mobile_spinenet.quantization.qat_run as qat_module
    from mobile_spinenet.cli import main
    from mobile_spinenet.eval.seed_spread import SeedSpreadOptions, seed_spread

    checkpoints = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "demo")
    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    calls = []
    monkeypatch.setattr(qat_module, "qat", lambda float_dir, train_dir, qat_dir, options: calls.append(
        (os.path.basename(float_dir), options.seed, options.float_layers)))
    monkeypatch.setattr(compare_module, "export_verified", lambda run_dir, path, quant, val_dir, images, progress: {
        "tflite_AP": 30.0, "tflite_AP50": 40.0, "keras_AP": 30.0, "passed": True, "agreement": 1.0, "images": images})
    mixed = SeedSpreadOptions(runs_from=checkpoints, data=str(tmp_path / "data"), out=str(tmp_path / "mixed"),
                              models=("spinenet49xxs",), seeds=(1, 2), verify_images=10,
                              float_layers=("stem_block0*", "boxes*"))
    record = seed_spread(mixed, progress=lambda message: None)
    assert calls == [("spinenet49xxs", 1, ("stem_block0*", "boxes*")), ("spinenet49xxs", 2, ("stem_block0*", "boxes*"))]
    assert record["settings"]["float_layers"] == ["stem_block0*", "boxes*"]
    assert "`stem_block0*`, `boxes*` left float" in (tmp_path / "mixed" / "seeds.md").read_text()
    with pytest.raises(ValueError, match="measured with other settings \\(float_layers\\)"):
        seed_spread(SeedSpreadOptions(**{**mixed.__dict__, "float_layers": ()}), progress=lambda message: None)
    calls.clear()
    # MobileNetV3 has no stem_block0 layer: refused, naming model and pattern, before any QAT
    code = main(["bench", "seeds", "--runs-from", checkpoints, "--data", str(tmp_path / "data"),
                 "--models", "spinenet49xxs,mnv3_small_ssdlite", "--float-layers", "stem_block0*",
                 "--out", str(tmp_path / "refused"), "--verify-images", "10"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and calls == [], err
    assert "mnv3_small_ssdlite" in err and "'stem_block0*' matches no layer" in err and len(err.splitlines()) == 1


def test_compare_uses_a_seed_spread_only_for_the_float_weights_it_was_measured_on(tmp_path, monkeypatch):
    # the demo checkpoints were retrained after seeds.json was measured on them: the report applied
    # the old weights' spread to the new weights without a word
    import mobile_spinenet.eval.compare as compare_module
    from mobile_spinenet.eval.compare import compare

    def weights_digest(run_dir):  # what bench seeds records: SHA-256 of the weights file, 16 digits
        return hashlib.sha256(open(os.path.join(run_dir, "model.weights.h5"), "rb").read()).hexdigest()[:16]

    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    runs = {}
    for model in ("spinenet49xs", "mnv3_large_ssdlite"):
        (tmp_path / "runs" / model).mkdir(parents=True)
        (tmp_path / "runs" / model / "model.weights.h5").write_bytes(model.encode())
        runs[model] = str(tmp_path / "runs" / model)
    measured = {r["model"]: r for r in (_result("spinenet49xs", 0.4e9, 8.0, 5.0, 3.0, 2.5),
                                        _result("mnv3_large_ssdlite", 0.2e9, 2.0, 1.25, 2.0, 1.0))}

    def fake_compare_model(entry, options, train_dir, val_dir, verify_images, progress):
        model = entry.name
        result = ModelResult(os.path.join(options.out, "results", f"{model}.json"), model)
        result.data.update({**measured[model], "training": {"epochs": 4.0, "run": runs[model]}})
        return result

    monkeypatch.setattr(compare_module, "compare_model", fake_compare_model)
    monkeypatch.setattr(compare_module, "benchmark_all", lambda results, options, progress: None)
    record = _seeds_record({"spinenet49xs": [2.4, 2.5, 2.6], "mnv3_large_ssdlite": [0.9, 1.0, 1.1]})
    record["float_weights"] = {"spinenet49xs": weights_digest(runs["spinenet49xs"]),
                               "mnv3_large_ssdlite": "0123456789abcdef"}  # measured before a retraining
    (tmp_path / "seeds.json").write_text(json.dumps(record))
    options = CompareOptions(str(tmp_path / "data"), str(tmp_path / "out"), ("spinenet49xs", "mnv3_large_ssdlite"),
                             seed_spread=str(tmp_path / "seeds.json"), verify_images=10)
    text = open(compare(options, progress=lambda message: None)).read()
    assert "| 3.00 | 2.50 ± 0.10 | 1.50 |" in text  # 49xs: measured on these weights
    assert "| 2.00 | 1.00 | 1.50 |" in text  # MobileNetV3-Large: on other weights, so no spread
    assert ("mnv3_large_ssdlite: the seed spread was measured on other float weights (0123456789abcdef; "
            f"this run's are {weights_digest(runs['mnv3_large_ssdlite'])}); not used") in text
    assert "| spinenet49xs / mnv3_large_ssdlite | 2.50 | 1.00 | +1.50 | – | unknown: no seed spread" in text
    # a seeds.json from before the weights were recorded is used as it is, and the report says so
    del record["float_weights"]
    (tmp_path / "seeds.json").write_text(json.dumps(record))
    text = open(compare(CompareOptions(**{**options.__dict__, "out": str(tmp_path / "older")}),
                        progress=lambda message: None)).read()
    assert "| 2.00 | 1.00 ± 0.10 | 1.50 |" in text and "**significant**" in text
    assert "mnv3_large_ssdlite: the seed spread does not name the float weights it was measured on" in text


def test_ptq_export_of_a_reused_packed_run_calibrates_on_the_compared_training_data(tmp_path, monkeypatch):
    # `compare --runs-from checkpoints/demo --extra-exports ptq` failed: a packed run records no
    # training data (sources.json), and compare did not pass its own --data to the calibration
    import mobile_spinenet.quantization.export_run as export_module
    from mobile_spinenet.eval.compare import compare_model

    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    packed = tmp_path / "checkpoints" / "spinenet49xxs"
    packed.mkdir(parents=True)
    (packed / "run.json").write_text("{}")
    out = tmp_path / "out"
    done = {"training": {"run": str(packed), "epochs": 12}, "float": {"AP": 30.0}, "qat": {"epochs": 0.25},
            "int8": {}, "int8_raw": {}, "counts": {}}
    (out / "results").mkdir(parents=True)
    (out / "results" / "spinenet49xxs.json").write_text(json.dumps({"model": "spinenet49xxs", "minutes": {}, **done}))
    seen = {}

    def fake_export(run_dir, path, export=None, calibration=None, verification=None, progress=print):
        seen.update(run_dir=run_dir, quant=export.quant, calib=calibration and calibration.data)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").write(b"tflite")
        return {"quant": export.quant, "ops": {}, "verification": {
            "passed": True, "keras_ap": 30.0, "tflite_ap": 29.5, "keras_ap50": 45.0, "tflite_ap50": 44.0,
            "agreement": 1.0, "images": 10}}

    monkeypatch.setattr(export_module, "export_tflite", fake_export)
    options = CompareOptions(str(tmp_path / "data"), str(out), ("spinenet49xxs",), runs_from=str(tmp_path / "checkpoints"),
                             extra_exports=("ptq",), verify_images=10)
    from mobile_spinenet.eval.entries import Entry
    result = compare_model(Entry("spinenet49xxs", "spinenet49xxs", 256, str(packed)), options,
                           str(tmp_path / "data" / "train"), str(tmp_path / "data" / "val"), 10,
                           progress=lambda message: None)
    assert seen == {"run_dir": str(packed), "quant": "int8", "calib": str(tmp_path / "data" / "train")}
    assert result["ptq"]["tflite_AP"] == 29.5


def test_bench_seeds_flags_reach_its_options(tmp_path, monkeypatch, capsys):
    import mobile_spinenet.eval.seed_spread as seed_module
    from mobile_spinenet.cli import main

    (tmp_path / "runs" / "mnv3_small_ssdlite").mkdir(parents=True)
    (tmp_path / "runs" / "mnv3_small_ssdlite" / "run.json").write_text("{}")
    seen = {}

    def fake_seed_spread(options, progress):
        seen["options"] = options
        return {"settings": {"runs_from": options.runs_from, "qat_epochs": options.qat_epochs, "seeds": [1, 2],
                             "val_images": 5, "freeze_bn": options.freeze_bn}, "runs": {}}

    monkeypatch.setattr(seed_module, "seed_spread", fake_seed_spread)
    assert main(["bench", "seeds", "--runs-from", str(tmp_path / "runs"), "--data", "d", "--models",
                 "mnv3_small_ssdlite", "--seeds", "1,2", "--qat-epochs", "0.5", "--freeze-bn", "--out", "o"]) == 0
    options = seen["options"]
    assert (options.models, options.seeds, options.qat_epochs, options.freeze_bn) == \
        (("mnv3_small_ssdlite",), (1, 2), 0.5, True)
    assert "with its BN layers frozen" in capsys.readouterr().out


def _row(model, ms1, ap):
    return {"model": model, "latency_ms": {1: ms1}, "int8_ap": ap}


def test_ap_at_matched_latency_interpolates_the_ssdlite_curve_and_never_extrapolates():
    from mobile_spinenet.eval.latency_match import frontier, interpolate, matched_latency

    assert interpolate([(3.0, 26.0), (1.0, 19.0)], 2.0) == pytest.approx(22.5)
    assert interpolate([(3.0, 26.0), (1.0, 19.0)], 3.5) is None
    rows = [_row("mnv3_small_ssdlite", 1.0, 19.0), _row("mnv3_large_ssdlite", 3.0, 26.0),
            _row("spinenet49xxs", 2.0, 24.5),       # inside: SSDLite gives 22.5 at 2 ms
            _row("spinenet49xs", 4.0, 30.0),        # slower and better than every SSDLite: undecided
            _row("spinenet49xs_lite", 3.5, 25.0),   # slower and worse than Large: loses
            _row("spinenet49s_mobile", 0.8, 20.0)]  # faster and better than Small: wins
    matched = matched_latency(rows, (1,))
    found = {e["model"]: e for e in matched if e["against"] == "MobileNetV3-SSDLite"}
    assert set(found) == {"spinenet49xxs", "spinenet49xs", "spinenet49xs_lite", "spinenet49s_mobile"}
    assert found["spinenet49xxs"]["reference_ap"] == pytest.approx(22.5)
    assert found["spinenet49xxs"]["difference"] == pytest.approx(2.0)
    assert found["spinenet49xxs"]["verdict"] == "wins by 2.00 AP"  # no seed spread: no claim on noise
    assert "mnv3_small_ssdlite..mnv3_large_ssdlite" in found["spinenet49xxs"]["reference"]
    assert found["spinenet49xs"]["difference"] is None and found["spinenet49xs"]["verdict"].startswith("undecided: slower")
    assert found["spinenet49xs_lite"]["verdict"].startswith("loses: mnv3_large_ssdlite is faster")
    assert found["spinenet49s_mobile"]["verdict"].startswith("wins: faster than mnv3_small_ssdlite")
    # the other way round: each SSDLite against the SpineNet curve (0.8 .. 4.0 ms)
    against_spinenet = {e["model"]: e for e in matched if e["against"] == "SpineNet"}
    assert set(against_spinenet) == {"mnv3_small_ssdlite", "mnv3_large_ssdlite"}
    # Large at 3 ms: between 49xxs (2 ms, 24.5) and 49xs_lite (3.5 ms, 25.0) -> 24.8333
    assert against_spinenet["mnv3_large_ssdlite"]["reference_ap"] == pytest.approx(24.5 + 0.5 * 2 / 3)
    assert frontier(rows, 1) == ["spinenet49s_mobile", "spinenet49xxs", "mnv3_large_ssdlite", "spinenet49xs"]
    assert matched_latency([r for r in rows if "ssdlite" not in r["model"]], (1,)) == []  # no curve, no claim


def test_a_second_size_of_a_family_extends_its_curve_and_decides_what_was_undecided():
    from mobile_spinenet.eval.latency_match import matched_latency, undecided

    rows = [_row("mnv3_large_ssdlite", 3.0, 26.0), _row("spinenet49xs", 4.0, 30.0)]
    assert undecided(matched_latency(rows, (1,))) == [("mnv3_large_ssdlite", 1), ("spinenet49xs", 1)]
    rows.append(_row("mnv3_large_ssdlite@384", 5.0, 29.0))  # SSDLite now reaches past 49xs: 27.5 at 4 ms
    matched = matched_latency(rows, (1,))
    entry = next(e for e in matched if e["model"] == "spinenet49xs")
    assert entry["reference_ap"] == pytest.approx(27.5) and entry["difference"] == pytest.approx(2.5)
    assert "mnv3_large_ssdlite..mnv3_large_ssdlite@384" in entry["reference"]
    assert ("spinenet49xs", 1) not in undecided(matched)


def test_matched_latency_weighs_the_difference_against_the_seed_spreads():
    from mobile_spinenet.eval.latency_match import interpolated_sd, matched_latency

    assert interpolated_sd(0.3, 0.4, 0.5) == pytest.approx(((0.15 ** 2) + (0.2 ** 2)) ** 0.5)
    assert interpolated_sd(0.3, None, 0.0) == 0.3 and interpolated_sd(0.3, None, 0.5) is None

    def rows(spine_ap):
        return [{**_row("mnv3_large_ssdlite", 2.0, 30.0), "int8_ap_sd": 0.6},
                {**_row("mnv3_large_ssdlite@384", 6.0, 34.0), "int8_ap_sd": 0.8},
                {**_row("spinenet49xs", 4.0, spine_ap), "int8_ap_sd": 0.3}]
    # at 4 ms the curve is 32.0 with sd sqrt(0.3^2 + 0.4^2) = 0.5; 2 sd of the difference: 2 * sqrt(0.25 + 0.09)
    threshold = 2 * (0.25 + 0.09) ** 0.5
    near = next(e for e in matched_latency(rows(33.0), (1,)) if e["model"] == "spinenet49xs")
    assert near["threshold"] == pytest.approx(threshold) and near["significant"] is False
    assert "within 2 sd" in near["verdict"] and "not a result" in near["verdict"]
    far = next(e for e in matched_latency(rows(34.5), (1,)) if e["model"] == "spinenet49xs")
    assert far["significant"] is True and far["verdict"].startswith("wins by 2.50 AP, beyond 2 sd")
    unknown = rows(34.5)
    unknown[2]["int8_ap_sd"] = None
    entry = next(e for e in matched_latency(unknown, (1,)) if e["model"] == "spinenet49xs")
    assert entry["threshold"] is None and entry["significant"] is None


def test_report_says_which_model_wins_at_matched_latency(tmp_path):
    results = RESULTS + [_result("mnv3_small_ssdlite", 0.07e9, 1.0, 0.75, 0.5, 0.4)]
    text = open(write_report(str(tmp_path), results, SETTINGS)).read()
    # SSDLite: Small 1 ms / 0.4 AP, Large 2 ms / 1.0 AP at 1 thread; spinenet49xxs is slower than Large and worse
    assert "## AP at matched latency" in text
    assert ("| spinenet49xxs | 1 | 3.00 | 0.90 | MobileNetV3-SSDLite | nearest: mnv3_large_ssdlite (2.00 ms) | 1.00 "
            "| – | – | loses: ") in text
    assert ("| spinenet49xs | 2 | 5.00 | 2.50 | MobileNetV3-SSDLite | nearest: mnv3_large_ssdlite (1.25 ms) | 1.00 "
            "| – | – | undecided: ") in text
    # and each SSDLite against the SpineNet curve: Large is faster and better than 49xxs, the fastest SpineNet
    assert "| mnv3_large_ssdlite | 1 | 2.00 | 1.00 | SpineNet | nearest: spinenet49xxs (3.00 ms) | 0.90 | – | – | wins: " in text
    assert "fastest first: mnv3_small_ssdlite, mnv3_large_ssdlite, spinenet49xs." in text
    assert "Undecided against every other family's curve" in text and "spinenet49xs at 2 thread(s)" in text
    saved = json.loads((tmp_path / "report.json").read_text())["matched_latency"]
    assert {(e["model"], e["threads"], e["against"]) for e in saved} == \
        {(m, t, "MobileNetV3-SSDLite") for m in ("spinenet49xs", "spinenet49xxs") for t in (1, 2)} | \
        {(m, t, "SpineNet") for m in ("mnv3_small_ssdlite", "mnv3_large_ssdlite") for t in (1, 2)}


def test_an_entry_is_a_model_id_a_model_id_at_a_size_or_a_reused_run(tmp_path):
    from mobile_spinenet.eval.entries import parse_entries, parse_entry

    assert parse_entry("mnv3_large_ssdlite@384") == parse_entry("mnv3_large_ssdlite@384")
    entry = parse_entry("mnv3_large_ssdlite@384")
    assert (entry.model_id, entry.image_size, entry.run_dir, entry.names_its_size) == \
        ("mnv3_large_ssdlite", 384, None, True)
    assert parse_entry("spinenet49xxs").image_size is None
    checkpoints = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints", "demo")
    reused = parse_entry("spinenet49xxs", checkpoints)
    assert (reused.model_id, reused.image_size, reused.names_its_size) == ("spinenet49xxs", 256, False)
    options = CompareOptions(str(tmp_path), str(tmp_path), ("mnv3_large_ssdlite", "mnv3_large_ssdlite@384"))
    assert [options.size_of(e) for e in options.entries()] == [256, 384]  # the default size, and the named one
    for bad, message in [("mnv3_large_ssdlite@abc", "must be a positive number of pixels"),
                         ("mnv3_large_ssdlite@0", "must be a positive number of pixels"),
                         ("mnv3_large_ssdlite@100", "multiple of 32"),
                         ("spinenet49xxs@200", "multiple of 128"),
                         ("nonet@320", "unknown model id 'nonet'"), ("", "empty name")]:
        with pytest.raises(ValueError, match=message):
            parse_entry(bad)
    with pytest.raises(ValueError, match="no finished run nonet/ in --runs-from"):
        parse_entry("nonet", checkpoints)
    with pytest.raises(ValueError, match="trained at 256 px, not 384"):
        _reused_at(checkpoints, tmp_path)  # a run folder whose name claims another size than its config
    with pytest.raises(ValueError, match="lists a model twice"):
        parse_entries(["mnv3_large_ssdlite@320", "mnv3_large_ssdlite@320"])


def _reused_at(checkpoints, tmp_path):
    """A copy of a packed run under a name that claims another size."""
    import shutil
    from mobile_spinenet.eval.entries import parse_entry

    shutil.copytree(os.path.join(checkpoints, "spinenet49xxs"), tmp_path / "runs" / "spinenet49xxs@384")
    return parse_entry("spinenet49xxs@384", str(tmp_path / "runs"))


def test_compare_trains_an_id_at_size_entry_at_its_size_under_its_own_name(tmp_path, monkeypatch):
    import mobile_spinenet.eval.compare as compare_module

    seen = {}

    def fake_bench(model, size, batch, **kwargs):
        seen["bench"] = (model, size)
        raise RuntimeError("stop here")

    monkeypatch.setattr("mobile_spinenet.training.bench.bench_train", fake_bench)
    from mobile_spinenet.data.demo import make_demo_dataset
    make_demo_dataset(str(tmp_path / "data"), train_images=32, val_images=1)
    options = CompareOptions(str(tmp_path / "data"), str(tmp_path / "out"), ("mnv3_small_ssdlite@320",))
    entry = options.entries()[0]
    with pytest.raises(RuntimeError, match="stop here"):
        compare_module.compare_model(entry, options, str(tmp_path / "data" / "train"), str(tmp_path / "data" / "val"),
                                     1, progress=lambda message: None)
    assert seen["bench"] == ("mnv3_small_ssdlite", 320)
    saved = json.loads((tmp_path / "out" / "results" / "mnv3_small_ssdlite@320.json").read_text())
    assert saved["model"] == "mnv3_small_ssdlite@320" and saved["model_id"] == "mnv3_small_ssdlite"


def test_an_external_file_is_scored_timed_with_the_kits_files_and_put_on_its_own_curve(tmp_path, monkeypatch, capsys):
    import numpy as np
    from test_external_inputs import _ultralytics_file

    import mobile_spinenet.eval.benchmark as benchmark_module
    import mobile_spinenet.eval.compare as compare_module
    import mobile_spinenet.eval.evaluate as evaluate_module
    from mobile_spinenet.cli import main
    from mobile_spinenet.data.demo import make_split
    from mobile_spinenet.data.readers import read_dataset
    from mobile_spinenet.eval.compare import compare

    for split, count in (("train", 1), ("val", 3)):
        make_split(str(tmp_path / "data" / split), split, count, seed=4)
    names = read_dataset(str(tmp_path / "data" / "val")).label_map.names
    rows = np.zeros([4 + len(names), 40], np.float32)
    rows[:4] = 0.5
    rows[4] = 0.9
    yolo = _ultralytics_file(tmp_path / "yolo.tflite", rows, names, size=64)
    kit = {"spinenet49xs": _result("spinenet49xs", 0.4e9, 8.0, 5.0, 30.0, 29.0),
           "mnv3_large_ssdlite": _result("mnv3_large_ssdlite", 0.2e9, 2.0, 1.25, 20.0, 19.0)}

    def fake_compare_model(entry, options, train_dir, val_dir, verify_images, progress):
        result = ModelResult(os.path.join(options.out, "results", f"{entry.name}.json"), entry.name)
        result.data.update({k: v for k, v in kit[entry.name].items() if k != "benchmark"})
        result.data["int8"]["file"] = f"{entry.name}.tflite"
        return result

    timed = []

    def fake_interleaved(files, threads, runs, warmup, rounds):
        timed.append(list(files))
        ms = {"spinenet49xs.tflite": 8.0, "mnv3_large_ssdlite.tflite": 2.0, str(yolo): 4.0}
        return {f: [{"threads": t, "median_ms": ms[f] / t} for t in threads] for f in files}

    monkeypatch.setattr(compare_module, "compare_model", fake_compare_model)
    monkeypatch.setattr(benchmark_module, "benchmark_interleaved", fake_interleaved)
    options = CompareOptions(str(tmp_path / "data"), str(tmp_path / "out"), ("spinenet49xs", "mnv3_large_ssdlite"),
                             external=(f"yolo11n={yolo}",), show_progress=False)
    text = open(compare(options, progress=lambda message: None)).read()
    assert timed == [["spinenet49xs.tflite", "mnv3_large_ssdlite.tflite", str(yolo)]]  # one interleaved run
    record = json.loads((tmp_path / "out" / "results" / "yolo11n.json").read_text())
    assert record["int8"]["images"] == 3 and record["external"]["family"] == "Ultralytics YOLO (external)"
    ap = record["int8"]["tflite_AP"]
    assert f"| yolo11n (external) | 64 | – | – | – | {ap:.2f} |" in text
    assert "- yolo11n: " in text and "Ultralytics raw outputs" in text
    # judged against the kit's families' curves, and the kit's models against its one-point curve
    assert f"| yolo11n | 1 | 4.00 | {ap:.2f} | SpineNet |" in text
    assert "| spinenet49xs | 1 | 8.00 | 29.00 | Ultralytics YOLO (external) |" in text
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["settings"]["external"] == {"yolo11n": str(yolo)}

    # a rerun resumes: the file is not scored again; another file under that name is refused
    monkeypatch.setattr(evaluate_module, "evaluate_path", lambda *a, **k: pytest.fail("scored twice"))
    compare(options, progress=lambda message: None)
    other = _ultralytics_file(tmp_path / "other.tflite", rows * 0.5, names, size=64)
    with pytest.raises(ValueError, match="yolo11n.json holds the results of another file"):
        compare(CompareOptions(**{**options.__dict__, "external": (f"yolo11n={other}",)}), progress=lambda m: None)


@pytest.mark.parametrize("external, message", [
    ("yolo11n", "--external 'yolo11n': expected NAME=FILE"),
    ("yolo11n=nowhere.tflite", "--external yolo11n=nowhere.tflite: nowhere.tflite does not exist"),
    ("spinenet49xxs=FILE", "the name spinenet49xxs is already taken"),
    ("a b=FILE", "the name 'a b' may hold letters, digits"),
])
def test_a_bad_external_entry_gets_one_line_before_any_work(tmp_path, capsys, external, message):
    from mobile_spinenet.cli import main

    file = tmp_path / "x.tflite"
    file.write_bytes(b"x")
    external = external.replace("FILE", str(file))
    assert main(["compare", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--models", "spinenet49xxs",
                 "--external", external]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()

"""`mobile-spinenet search`: the space always yields buildable architectures, found ones round-trip
through their files, the study resumes after a kill without losing or repeating a trial, two worker
processes share one study, and bad input gets one line. The real evaluation (latency oracle and
proxy training) runs in tests/test_search_slow.py."""
import json
import os
import subprocess
import sys

import pytest

from mobile_spinenet.architecture import read_architecture
from mobile_spinenet.search.space import RandomChooser, SearchSpace, sample

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "search_worker.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from mobile_spinenet.data.demo import make_demo_dataset

    folder = tmp_path_factory.mktemp("search-data")
    make_demo_dataset(str(folder), train_images=4, val_images=2)
    return str(folder)


def test_every_sampled_architecture_validates_and_a_few_build():
    from mobile_spinenet.counting import count_params
    from mobile_spinenet.zoo import build_model

    for base in ("spinenet49xs", "spinenet49xxs"):
        space = SearchSpace(base=base).validate()
        digests = set()
        for seed in range(60):
            architecture = sample(space, RandomChooser(seed))  # validate() runs inside; raises if invalid
            digests.add(architecture.digest())
            assert architecture.base == base and sorted(b.level for b in architecture.blocks if b.is_output) == \
                [3, 4, 5, 6, 7]
            assert all(w % 8 == 0 for w in architecture.widths)
        assert len(digests) == 60  # the space is not collapsing to a few architectures
    for seed in range(3):
        architecture = sample(SearchSpace(), RandomChooser(100 + seed))
        model = build_model("spinenet49xs", image_size=128, num_classes=3, spec=architecture)
        assert count_params(model) > 0 and {o.shape[-1] for o in model.outputs} == {3, 4}  # classes, boxes


def test_a_fixed_space_gives_the_base_architecture_back():
    from mobile_spinenet.architecture import paper_architecture

    fixed = SearchSpace(base="spinenet49xs_lite", permute=False, level_adjustments=(0,), search_parents=False,
                        width_multipliers=(1.0,), kernel_sizes=(3,), expand_ratios=(6,), squeeze_excite=(True,),
                        activations=("relu6",), se_ratio=0.0)
    assert sample(fixed, RandomChooser(5)).to_dict() == paper_architecture("spinenet49xs_lite").to_dict()


def test_an_optuna_trial_is_a_chooser_and_search_space_files_are_checked(tmp_path):
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask()
    architecture = sample(SearchSpace(), trial)
    assert architecture.validate() is architecture and "order0" in trial.params and "width_L4" in trial.params
    with pytest.raises(ValueError, match="unknown field.*speed"):
        SearchSpace.from_dict({"speed": 1})
    with pytest.raises(ValueError, match="kernel_sizes: \\[4\\]"):
        SearchSpace.from_dict({"kernel_sizes": [4]})


def _run_worker(out, data, trials, kill_at=0, pause=0.0):
    return subprocess.run([sys.executable, WORKER, out, data, str(trials), str(kill_at), str(pause)],
                          capture_output=True, text=True, timeout=600)


def _calls(out):
    with open(os.path.join(out, "calls.log")) as f:
        return [line.split() for line in f]


def test_a_killed_search_resumes_with_no_trial_lost_or_run_twice(tmp_path, data, monkeypatch):
    import mobile_spinenet.search.study as study_module
    from search_worker import fake_evaluate

    out = str(tmp_path / "search")
    killed = _run_worker(out, data, 5, kill_at=3)
    assert killed.returncode != 0  # died in its third trial
    calls = _calls(out)
    assert [c[0] for c in calls] == ["start", "done", "start", "done", "start"]
    lost = calls[-1][1]
    monkeypatch.setattr(study_module, "STALE_AFTER_S", 0.0)  # the dead worker's trial is seconds old
    messages = []
    summary = study_module.run_search(study_module.SearchOptions(data=data, out=out, trials=5, target_ms=10.0,
                                                                 show_progress=False),
                                      evaluate=fake_evaluate(), progress=messages.append)
    assert any("trial 2 was left running" in m for m in messages), messages
    done = [c[1] for c in _calls(out) if c[0] == "done"]
    assert len(done) == len(set(done)) == 5 and lost in done  # each architecture finished once, the lost one too
    assert summary.finished == 5 and summary.failed == 1  # the interrupted trial is recorded as failed ...
    rows = open(os.path.join(out, "trials.csv")).read().splitlines()
    retried = [r for r in rows[1:] if r.split(",")[11] == "2"]
    assert len(retried) == 1 and retried[0].split(",")[1] == "complete"  # ... and retried once, as trial retry_of 2
    best = summary.best[0]
    path = os.path.join(out, "best", f"rank1_{best['architecture']}.yaml")
    assert read_architecture(path).digest() == best["architecture"]  # a found architecture round-trips
    assert os.path.isfile(os.path.join(out, "pareto.png")) and "Pareto front" in open(os.path.join(out, "summary.md")).read()
    again = study_module.run_search(study_module.SearchOptions(data=data, out=out, trials=5, target_ms=10.0,
                                                               show_progress=False), evaluate=fake_evaluate())
    assert again.finished == 5 and len([c for c in _calls(out) if c[0] == "done"]) == 5  # nothing more to do


def _two_workers(out, data, same_seed):
    os.makedirs(out)
    workers = [subprocess.Popen([sys.executable, WORKER, out, data, "8", "0", "0.5", "1" if same_seed else "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    printed = ""
    for worker in workers:
        output, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-2000:]
        printed += output
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="search", storage=JournalStorage(JournalFileBackend(
        os.path.join(out, "study.journal"))))
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert 8 <= len(complete) <= 9  # the two may each start the last trial at once
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both did some
    starts = [c[1] for c in _calls(out) if c[0] == "start"]
    assert len(starts) == len(set(starts))  # no architecture evaluated twice
    return complete, printed


def test_two_worker_processes_share_one_study_and_draw_different_architectures(tmp_path, data):
    complete, _ = _two_workers(str(tmp_path / "search"), data, same_seed=False)
    assert len({t.user_attrs["digest"] for t in complete}) == len(complete)  # each its own seed: no repeats
    assert sorted(os.listdir(tmp_path / "search" / "workers")) == ["0", "1"]


def test_two_workers_that_draw_the_same_architecture_evaluate_it_once(tmp_path, data):
    complete, printed = _two_workers(str(tmp_path / "search"), data, same_seed=True)
    assert any(t.user_attrs["reused"] for t in complete)  # one waited for the other's result and took it
    assert "waiting for its result" in printed


@pytest.mark.parametrize("flags, message", [
    (["--base", "mnv3_large_ssdlite"], "is not a SpineNet-Mobile model id"),
    (["--target-ms", "0"], "--target-ms must be a positive number"),
    (["--target-ms", "-3"], "--target-ms must be a positive number"),
    (["--target", "nonet"], "unknown model id 'nonet'"),
    (["--image-size", "200"], "--proxy-size 200 must be a positive multiple of 128"),
])
def test_bad_search_input_gets_one_line(tmp_path, data, capsys, flags, message):
    from mobile_spinenet.cli import main

    assert main(["search", "--data", data, "--out", str(tmp_path / "s")] + flags) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_empty_data_and_a_storage_another_search_owns_get_one_line(tmp_path, data, capsys):
    from mobile_spinenet.cli import main
    from mobile_spinenet.data.demo import make_demo_dataset
    from mobile_spinenet.search.study import SearchOptions, SearchStorageBusy, run_search
    from search_worker import fake_evaluate

    empty = tmp_path / "empty"
    make_demo_dataset(str(empty), train_images=1, val_images=1)
    annotations = empty / "train" / "annotations.json"
    coco = json.loads(annotations.read_text())
    coco["images"], coco["annotations"] = [], []
    annotations.write_text(json.dumps(coco))
    assert main(["search", "--data", str(empty), "--out", str(tmp_path / "s"), "--target-ms", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train/annotations.json: no usable images" in err and len(err.splitlines()) == 1, err

    out = str(tmp_path / "owned")
    run_search(SearchOptions(data=data, out=out, trials=1, target_ms=10.0, show_progress=False),
               evaluate=fake_evaluate())
    with pytest.raises(SearchStorageBusy, match="belongs to another search \\(it differs in objective\\)"):
        run_search(SearchOptions(data=data, out=out, trials=1, target_ms=10.0, objective="pareto",
                                 show_progress=False), evaluate=fake_evaluate())


def test_the_pareto_objective_records_ap_and_latency_and_the_front_has_no_dominated_trial(tmp_path, data):
    from mobile_spinenet.search.study import SearchOptions, objective_values, pareto_front, run_search
    from search_worker import fake_evaluate

    options = SearchOptions(data=data, out=str(tmp_path / "s"), trials=6, target_ms=10.0, objective="pareto",
                            show_progress=False)
    assert objective_values(options, 30.0, 12.0, 10.0) == [30.0, 12.0]
    mnas = SearchOptions(data=data, out=str(tmp_path / "m"), target_ms=10.0)
    assert objective_values(mnas, 30.0, 20.0, 10.0)[0] == pytest.approx(30.0 * 2 ** -0.07)  # slower: less reward
    summary = run_search(options, evaluate=fake_evaluate())
    assert summary.finished == 6
    front = summary.pareto
    assert front == pareto_front(summary.best) and front
    for row in summary.best:
        if row not in front:  # every trial off the front is beaten by a front trial in both
            assert any(f["latency_ms"] <= row["latency_ms"] and f["proxy_AP"] >= row["proxy_AP"] for f in front)
    assert [r["latency_ms"] for r in front] == sorted(r["latency_ms"] for r in front)


def test_rewriting_best_removes_only_its_own_stale_rank_files(tmp_path):
    """Two workers write the outputs in turn: one's in-flight temp file (``.tmp-...rankN_x.yaml``) and a
    file the user put in best/ must survive the other's clean-up, a rank file no longer wanted not."""
    from mobile_spinenet.search.report import write_outputs
    from mobile_spinenet.search.study import SearchOptions

    out = tmp_path / "search"
    best = out / "best"
    best.mkdir(parents=True)
    for name in (".tmp-k3l9rank2_00ab.yaml", "notes.yaml", "rank1_00ff.yaml"):
        (best / name).write_text("x\n")
    write_outputs(str(out), [], 5.0, SearchOptions(data=str(tmp_path), out=str(out)), [], [])
    assert sorted(os.listdir(best)) == [".tmp-k3l9rank2_00ab.yaml", "notes.yaml"]


def test_baselines_are_evaluated_once_with_the_trials_proxy_and_reported_beside_them(tmp_path, data):
    from mobile_spinenet.architecture import paper_architecture
    from mobile_spinenet.search.study import SearchOptions, run_search
    from search_worker import fake_evaluate

    out = str(tmp_path / "s")
    options = SearchOptions(data=data, out=out, trials=2, target_ms=10.0, show_progress=False,
                            baselines=("spinenet49xs", "spinenet49xxs"))
    messages = []
    summary = run_search(options, evaluate=fake_evaluate(), progress=messages.append)
    starts = [c[1] for c in _calls(out) if c[0] == "start"]
    paper = [paper_architecture(m).digest() for m in options.baselines]
    assert starts[:2] == paper and len(starts) == 4  # the baselines first, then the trials
    assert [b["model"] for b in summary.baselines] == ["spinenet49xs", "spinenet49xxs"]
    assert summary.finished == 2 and len(summary.best) == 2  # baselines are not trials of the study
    assert any(m.startswith("baseline spinenet49xxs: proxy AP") for m in messages)
    lines = open(os.path.join(out, "baselines.csv")).read().splitlines()
    assert lines[0].startswith("model,architecture,proxy_AP") and lines[1].startswith(f"spinenet49xs,{paper[0]},")
    assert "| spinenet49xxs |" in open(os.path.join(out, "summary.md")).read()
    again = run_search(SearchOptions(data=data, out=out, trials=2, target_ms=10.0, show_progress=False,
                                     baselines=("spinenet49xxs",)), evaluate=fake_evaluate())
    assert len([c for c in _calls(out) if c[0] == "start"]) == 4  # nothing evaluated twice
    assert [b["model"] for b in again.baselines] == ["spinenet49xxs"]


def test_a_baseline_that_is_not_a_spinenet_mobile_id_gets_one_line(tmp_path, data, capsys):
    from mobile_spinenet.cli import main

    assert main(["search", "--data", data, "--out", str(tmp_path / "s"), "--baselines", "spinenet49xs,spinenet49"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--baselines:" in err and "spinenet49" in err and len(err.splitlines()) == 1, err

"""Multi-worker training on loopback (`train --strategy multiworker`, TF_CONFIG with 127.0.0.1
ports chosen free at test time): two workers write one run, which equals one worker's with the same
global batch; a worker killed mid-run stops the other with one line naming it, and both resumed
end where an uninterrupted two-worker run ends. Each run is minutes of CPU (two TensorFlow
processes on loopback): slow."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from mobile_spinenet.training.workers import WorkerRole, lost_peer, worker_role

STEPS_CONFIG = """\
optimizer: sgd          # plain momentum SGD: Adam's first updates turn float rounding into +-lr steps
learning_rate: 0.05
sync_bn: true           # one worker too: batch norm's statistics by the same formula as two workers' all-reduce
momentum: 0.9
warmup_epochs: 0
ema_decay: null
precise_bn_images: 8
val_max_images: 2
"""


def _free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _command(data, out, config, extra=(), epochs=4, batch=4):
    return [sys.executable, "-m", "mobile_spinenet.cli", "train", "--model", "spinenet49xxs", "--data",
            str(data / "train"), "--val", str(data / "val"), "--out", str(out), "--config", str(config),
            "--image-size", "128", "--batch", str(batch), "--epochs", str(epochs), "--checkpoint-every", "2",
            "--no-progress", *extra]


def _start_workers(data, out, config, resume=False, epochs=4, batch=4):
    ports = _free_ports(2)
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                                      "task": {"type": "worker", "index": index}})}
        extra = ["--strategy", "multiworker"] + (["--resume"] if resume else [])
        workers.append(subprocess.Popen(_command(data, out, config, extra, epochs, batch) if not resume else
                                        [sys.executable, "-m", "mobile_spinenet.cli", "train", "--data",
                                         str(data / "train"), "--val", str(data / "val"), "--out", str(out),
                                         "--resume", "--no-progress"],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return workers


def _finish(workers, timeout=900):
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=timeout)
        results.append((worker.returncode, out, err))
    return results


KERNELS = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
from mobile_spinenet.backend import keras
if sys.argv[1] == "init":  # what the trainer builds before its first step (seed 0)
    from mobile_spinenet.zoo import build_model
    keras.utils.set_random_seed(0)
    model = build_model("spinenet49xxs", task="detection", image_size=128, num_classes=int(sys.argv[3]))
else:
    from mobile_spinenet.training.runs import open_run
    model = open_run(sys.argv[1]).model()
np.savez(sys.argv[2], *[w.numpy() for w in model.trainable_weights])
"""


def _kernels(source, path, num_classes=0) -> list:
    done = subprocess.run([sys.executable, "-c", KERNELS, str(source), str(path), str(num_classes)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(path) as found:
        return [found[f"arr_{k}"] for k in range(len(found.files))]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mobile_spinenet.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("distributed")
    make_demo_dataset(str(root / "data"), train_images=8, val_images=2)
    (root / "steps.yaml").write_text(STEPS_CONFIG)
    return root


def test_the_role_comes_from_tf_config_and_bad_ones_get_one_line():
    assert worker_role("default") == WorkerRole() and worker_role("default").is_chief
    cluster = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    env = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    role = worker_role("multiworker", env)
    assert (role.index, role.count, role.is_chief, role.several) == (1, 2, False, True)
    assert role.own_dir("out") == os.path.join("out", "workers", "1")
    chief = worker_role("multiworker", {"TF_CONFIG": json.dumps({"cluster": {"chief": ["c:1"], **cluster},
                                                                   "task": {"type": "chief", "index": 0}})})
    assert chief.is_chief and chief.count == 3 and chief.own_dir("out") == "out"
    message = "Collective ops is aborted by: ... /job:worker/replica:0/task:0 ... The tasks have crashed"
    assert lost_peer(message, role) == "worker 0 (10.0.0.1:2222)"
    assert lost_peer("no task named", role) == "a peer"
    for environ, text in [({}, "needs the TF_CONFIG environment variable"),
                          ({"TF_CONFIG": "{"}, "TF_CONFIG is not valid JSON"),
                          ({"TF_CONFIG": '{"cluster": {}}'}, 'TF_CONFIG needs "cluster"'),
                          ({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 5}})},
                           "TF_CONFIG task worker:5 is not in its cluster (worker:0, worker:1)")]:
        with pytest.raises(ValueError, match=text.replace("(", "\\(").replace(")", "\\)")):
            worker_role("multiworker", environ)


@pytest.mark.slow
def test_two_workers_write_one_run_that_equals_one_workers_with_the_same_global_batch(setup):
    """One step of a global batch of 8 (4 images a worker), one worker (sync BN: the same formula) against two, judged
    as tests/test_training.py judges the mirrored strategy on two CPUs against one device: the
    weight updates agree to 0.2% of their norm (a summation order changes them by ~0.05%, batch
    norm statistics left unsynced by ~1%, a wrong loss scaling by 50%)."""
    data, config = setup / "data", setup / "steps.yaml"
    two = setup / "two"
    results = _finish(_start_workers(data, two, config, epochs=1, batch=8))
    for code, out, err in results:
        assert code == 0, err[-3000:]
    assert "the run is the chief's" in results[1][1]
    assert not (two / "workers").exists()  # the other worker's checkpoint copies are gone
    assert json.loads((two / "run.json").read_text())["steps"] == 1
    metrics = (two / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 2 and metrics[-1].split(",")[-7] != ""  # the chief validated the last epoch
    single = subprocess.run(_command(data, setup / "one", config, epochs=1, batch=8), capture_output=True, text=True,
                            timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]
    num_classes = json.loads((setup / "one" / "run.json").read_text())["num_classes"]
    init = _kernels("init", setup / "init.npz", num_classes)
    one, both = _kernels(setup / "one", setup / "one.npz"), _kernels(two, setup / "two.npz")
    update = np.sqrt(sum(float(np.sum((a - w) ** 2)) for a, w in zip(one, init)))
    mismatch = np.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(one, both)))
    assert update > 0.1, update  # the step really moved the weights (a thousand times the mismatch allowed)
    assert mismatch / update < 0.002, mismatch / update


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_with_one_line_and_both_resume_to_the_uninterrupted_run(setup):
    """Four steps with a checkpoint every two: worker 1 killed once the step-2 checkpoint exists;
    both restarted with --resume end with the uninterrupted two-worker run's weights, bit for bit
    (the same steps replayed from the same checkpoint, as one worker's resume is)."""
    data, config = setup / "data", setup / "steps.yaml"
    whole = setup / "whole"
    for code, _, err in _finish(_start_workers(data, whole, config, epochs=2)):
        assert code == 0, err[-3000:]
    out = setup / "killed"
    workers = _start_workers(data, out, config, epochs=2)
    deadline = time.time() + 900
    while not (out / "checkpoints" / "step-00000002").exists():
        assert time.time() < deadline and workers[0].poll() is None, "no checkpoint at step 2"
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGKILL)
    code, _, err = _finish(workers[:1])[0]
    workers[1].wait()
    last = err.strip().splitlines()[-1]
    assert code == 1 and "worker 0 (127.0.0.1:" in last and "lost worker 1 (127.0.0.1:" in last, err[-3000:]
    assert "start every worker again with --resume" in last
    assert not (out / "run.json").exists()
    for code, _, err in _finish(_start_workers(data, out, config, resume=True)):
        assert code == 0, err[-3000:]
    a, b = _kernels(whole, setup / "whole.npz"), _kernels(out, setup / "resumed.npz")
    assert len(a) == len(b) > 100
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)

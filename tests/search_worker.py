"""A `search` worker with a stand-in evaluation (no training, no benchmark), run as its own process
by tests/test_search.py: ``python tests/search_worker.py OUT DATA TRIALS [KILL_AT_CALL]``.

The stand-in scores an architecture from its widths (deterministic), appends ``start DIGEST`` and
``done DIGEST`` to OUT/calls.log around it, and with KILL_AT_CALL dies (os._exit) in that call,
after ``start``: a worker killed mid-trial. With SAME_SEED ``1`` every worker samples with ``--seed``
(as workers of one database on several machines could), so they draw the same architectures."""
import os
import sys
import time


def fake_evaluate(kill_at: int = 0, pause_s: float = 0.0):
    calls = {"n": 0}

    def evaluate(architecture, folder):
        calls["n"] += 1
        out = os.path.dirname(os.path.dirname(folder))
        log = os.path.join(out, "calls.log")
        digest = architecture.digest()
        with open(log, "a") as f:
            f.write(f"start {digest} {os.getpid()}\n")
        if kill_at and calls["n"] == kill_at:
            os._exit(9)
        time.sleep(pause_s)
        with open(log, "a") as f:
            f.write(f"done {digest} {os.getpid()}\n")
        width = sum(architecture.widths)
        return {"AP": 20.0 + (width % 37) / 3.0, "latency_ms": width / 40.0, "latency_ratio": width / 400.0}
    return evaluate


def main(argv):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from mobile_spinenet.search.study import SearchOptions, run_search

    out, data, trials = argv[0], argv[1], int(argv[2])
    kill_at = int(argv[3]) if len(argv) > 3 else 0
    pause = float(argv[4]) if len(argv) > 4 else 0.0
    if len(argv) > 5 and argv[5] == "1":
        import mobile_spinenet.search.study as study_module
        study_module.worker_seed = lambda options: options.seed
        study_module.WAIT_POLL_S = 0.1
    options = SearchOptions(data=data, out=out, trials=trials, target_ms=10.0, show_progress=False)
    run_search(options, evaluate=fake_evaluate(kill_at, pause), progress=lambda message: print(message, flush=True))


if __name__ == "__main__":
    main(sys.argv[1:])

"""``mobile-spinenet search``: a latency-aware SpineNet-Mobile architecture search on the user's data
and device, on Optuna.

Each trial samples an architecture (:mod:`mobile_spinenet.search.space`), measures its int8
latency against a reference model on this machine (:mod:`mobile_spinenet.search.latency`) and
trains it on the proxy task (:mod:`mobile_spinenet.search.proxy`). The objective is MnasNet's
reward ``AP * (latency / target) ** w`` (w = -0.07), or, with ``pareto``, AP and latency as two
objectives.

The study's storage is the record: a journal file (default ``OUT/study.journal``) or a database
URL, which several worker processes, on one machine or several, share. Work is keyed by the
architecture's digest (``OUT/archs/<digest>/``: the proxy run, the int8 file, ``result.json``), so
an architecture is never trained or timed twice: a worker evaluating one holds
``OUT/archs/<digest>/run.lock``, and another that draws the same architecture meanwhile waits for its
result. Each worker seeds its sampler with a number it claims (``OUT/workers/<k>``; the first gets
``--seed``), so workers started together do not draw the same architectures. While a worker runs a
trial it holds a lock on
``OUT/trials/<number>/run.lock``; a trial left running by a worker that died (its lock free) is marked
failed and its architecture is queued again, so a killed search resumes with no trial lost, and
the queued retry continues the dead worker's proxy run from its last checkpoint."""
from __future__ import annotations

import json
import math
import os
import socket
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from mobile_spinenet.io_utils import write_json_atomically
from mobile_spinenet.search.latency import LatencyOptions
from mobile_spinenet.search.proxy import ProxyOptions
from mobile_spinenet.search.space import SearchSpace

OBJECTIVES = ("mnas", "pareto")
MNAS_WEIGHT = -0.07  # MnasNet's soft latency constraint (Tan et al., 2019)
STALE_AFTER_S = 60.0  # a running trial younger than this is never taken for a dead worker's
WAIT_POLL_S = 2.0  # how often a worker looks whether another one finished an architecture it drew too
MAX_FAILURES_IN_A_ROW = 3
SETTINGS_ATTR = "mobile_spinenet_search"


class SearchStorageBusy(ValueError):
    """The storage holds a study of another search (other settings) under the same name."""


@dataclass(frozen=True)
class SearchOptions:
    data: str  # a folder with train/ and val/, or the training set when val is given
    out: str
    space: SearchSpace = field(default_factory=SearchSpace)
    trials: int = 20  # finished trials wanted (over every worker)
    target: str = "mnv3_large_ssdlite"  # the reference model (ID or ID@SIZE) whose latency is the target
    target_ms: Optional[float] = None  # a fixed target instead of the reference's latency
    objective: str = "mnas"
    mnas_weight: float = MNAS_WEIGHT
    latency: LatencyOptions = field(default_factory=LatencyOptions)
    proxy: ProxyOptions = field(default_factory=ProxyOptions)
    storage: Optional[str] = None  # a journal file or a database URL (default OUT/study.journal)
    study_name: str = "search"
    seed: int = 0
    val: Optional[str] = None
    baselines: tuple = ()  # SpineNet-Mobile ids evaluated with the same proxy and oracle, beside the trials
    show_progress: bool = True

    def validate(self) -> "SearchOptions":
        from mobile_spinenet.eval.entries import parse_entry

        self.space.validate()
        self.latency.validate()
        self.proxy.validate()
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"--trials must be a positive whole number, got {self.trials!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.target_ms is not None and not (self.target_ms > 0 and math.isfinite(self.target_ms)):
            raise ValueError(f"--target-ms must be a positive number of milliseconds, got {self.target_ms!r}")
        if not (self.mnas_weight < 0 and math.isfinite(self.mnas_weight)):
            raise ValueError(f"--latency-weight must be negative (MnasNet's -0.07), got {self.mnas_weight!r}")
        parse_entry(self.target)
        from mobile_spinenet.architecture import paper_architecture
        for model_id in self.baselines:
            try:
                paper_architecture(model_id)
            except ValueError as error:
                raise ValueError(f"--baselines: {error}") from None
        if self.latency.image_size != self.proxy.image_size:
            raise ValueError(f"the latency is timed at {self.latency.image_size} px but the proxy trains at "
                             f"{self.proxy.image_size} px; one size for both (--image-size)")
        return self

    @property
    def storage_url(self) -> str:
        return self.storage or os.path.join(self.out, "study.journal")

    def settings(self, train_dir: str, val_dir: str) -> dict:
        """What decides a trial's result: two searches with other settings never share a study."""
        return {"space": self.space.to_dict(), "target": self.target, "target_ms": self.target_ms,
                "objective": self.objective, "mnas_weight": self.mnas_weight, "latency": asdict(self.latency),
                "proxy": asdict(self.proxy), "data": os.path.abspath(train_dir), "val": os.path.abspath(val_dir)}


def _storage(url: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if "://" in url:
        return url  # a database URL: Optuna's RDB storage
    folder = os.path.dirname(os.path.abspath(url))
    if not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def open_study(options: SearchOptions, settings: dict, sampler_seed: Optional[int] = None):
    """The study of this search in its storage, created on first use; refused in one line when the
    storage holds a study of that name made with other settings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize"] if options.objective == "mnas" else ["maximize", "minimize"]
    storage = _storage(options.storage_url)
    probe = optuna.create_study(storage=storage, study_name=options.study_name, load_if_exists=True,
                                directions=directions)
    owned = probe.user_attrs.get(SETTINGS_ATTR)
    if owned is None:
        probe.set_user_attr(SETTINGS_ATTR, settings)
        owned = settings
    if json.dumps(owned, sort_keys=True) != json.dumps(settings, sort_keys=True):
        changed = ", ".join(sorted(k for k in set(owned) | set(settings) if owned.get(k) != settings.get(k)))
        raise SearchStorageBusy(f"--storage {options.storage_url}: study {options.study_name!r} belongs to another "
                                f"search (it differs in {changed}); pass another --study or --out")
    seed = options.seed if sampler_seed is None else sampler_seed
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=8, constant_liar=True)
    return optuna.load_study(study_name=options.study_name, storage=storage, sampler=sampler)


def trial_lock(out: str, number: int):
    """The lock (``OUT/trials/<number>/run.lock``, the kit's one flock-with-owner lock) held by the
    worker running trial ``number``; the kernel drops it when that worker dies, which is how a dead
    worker's trial is told from a live one's."""
    from mobile_spinenet.training.runs import RunLock
    return RunLock(os.path.join(out, "trials", str(number)))


def claim_worker_number(out: str) -> int:
    """The lowest k for which this process creates ``OUT/workers/<k>`` (atomically, so two workers
    starting together get different numbers); the file names the worker."""
    folder = os.path.join(out, "workers")
    os.makedirs(folder, exist_ok=True)
    k = 0
    while True:
        try:
            fd = os.open(os.path.join(folder, str(k)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            k += 1
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"pid {os.getpid()} on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return k


def worker_seed(options: SearchOptions) -> int:
    """The sampler seed of this worker: ``--seed`` for the first worker of OUT, else one derived from
    its claimed number, host and pid (workers on other machines share a database, not OUT), so no
    two workers replay each other's draws."""
    k = claim_worker_number(options.out)
    if k == 0:
        return options.seed
    return (options.seed + zlib.crc32(f"{k}:{socket.gethostname()}:{os.getpid()}".encode())) % (2 ** 31)


def architecture_lock(folder: str, progress: Callable[[str], None]):
    """The lock on an architecture's folder, acquired (waiting while another worker evaluates it)."""
    from mobile_spinenet.training.runs import RunDirectoryBusy, RunLock

    lock, told = RunLock(folder), False
    while True:
        try:
            return lock.acquire()
        except RunDirectoryBusy:
            if not told:
                progress(f"{os.path.basename(folder)} is being evaluated by {lock.owner()}; waiting for its result")
                told = True
            time.sleep(WAIT_POLL_S)


def recover_stale_trials(study, out: str, progress: Callable[[str], None] = print) -> list:
    """Mark each trial left running by a dead worker failed and queue its architecture again
    (``retry_of``); returns the numbers recovered."""
    from optuna.trial import TrialState

    from mobile_spinenet.training.runs import RunDirectoryBusy

    recovered = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - started < STALE_AFTER_S:
            continue
        lock = trial_lock(out, trial.number)
        try:
            lock.acquire()
        except RunDirectoryBusy:
            continue  # its worker is alive
        try:
            fresh = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
            if fresh.state != TrialState.RUNNING:
                continue
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            study.enqueue_trial(dict(fresh.params), user_attrs={"retry_of": trial.number})
            recovered.append(trial.number)
            progress(f"trial {trial.number} was left running by a worker that stopped "
                     f"({fresh.user_attrs.get('worker', 'unknown worker')}); queued again")
        finally:
            lock.release()
    return recovered


def objective_values(options: SearchOptions, ap: float, latency_ms: float, target_ms: float) -> list:
    """What the study optimises for a trial's proxy AP and latency."""
    if options.objective == "pareto":
        return [ap, latency_ms]
    return [ap * (latency_ms / target_ms) ** options.mnas_weight]


def _read_json(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


class Evaluator:
    """The real work of a trial: latency on this machine, then the proxy training. Built lazily (the
    reference file, the datasets) so that a worker with nothing left to do loads nothing."""

    def __init__(self, options: SearchOptions, train_dir: str, val_dir: str):
        self.options, self.train_dir, self.val_dir = options, train_dir, val_dir
        self._oracle = self._data = None
        self.stage: Callable[[str], None] = lambda text: None  # what the trial is doing, for the progress bar

    @property
    def oracle(self):
        from mobile_spinenet.search.latency import LatencyOracle

        if self._oracle is None:
            self._oracle = LatencyOracle(self.options.target, self.options.latency,
                                         os.path.join(self.options.out, "reference"))
        return self._oracle

    def target_ms(self) -> float:
        return self.oracle.target_ms(self.options.target_ms)

    def __call__(self, architecture, folder: str) -> dict:
        from mobile_spinenet.data.readers import read_dataset
        from mobile_spinenet.search.proxy import proxy_ap

        if self._data is None:
            train = read_dataset(self.train_dir)
            self._data = (train, read_dataset(self.val_dir, label_map=train.label_map))
        latency_path = os.path.join(folder, "latency.json")
        latency = _read_json(latency_path)
        if latency is None:
            self.stage(f"{architecture.digest()}: int8 latency against {self.options.target}")
            latency = self.oracle.measure(architecture, os.path.join(folder, "int8_network.tflite"))
            write_json_atomically(latency_path, latency)
        self.stage(f"{architecture.digest()}: {latency['latency_ms']:.2f} ms; proxy training")
        accuracy = proxy_ap(architecture, *self._data, os.path.join(folder, "proxy"), self.options.proxy,
                            show_progress=False)
        return {**latency, **accuracy}


def _trial_row(trial) -> dict:
    attrs = trial.user_attrs
    return {"trial": trial.number, "state": trial.state.name.lower(), "architecture": attrs.get("digest", ""),
            "proxy_AP": attrs.get("AP"), "proxy_AP50": attrs.get("AP50"), "latency_ms": attrs.get("latency_ms"),
            "latency_ratio": attrs.get("latency_ratio"), "multiply_adds_M": (attrs["multiply_adds"] / 1e6
                                                                             if attrs.get("multiply_adds") else None),
            "objective": trial.values[0] if trial.values else None, "minutes": attrs.get("minutes"),
            "reused": attrs.get("reused", False), "retry_of": attrs.get("retry_of"), "worker": attrs.get("worker", ""),
            "error": attrs.get("error", "")}


@dataclass
class SearchSummary:
    finished: int
    failed: int
    best: list  # trial rows, best objective first
    pareto: list  # trial rows on the AP-latency front, fastest first
    target_ms: float
    out: str
    baselines: list = field(default_factory=list)  # the --baselines models' rows


def pareto_front(rows: list) -> list:
    """Rows no other row beats in both proxy AP and latency, fastest first."""
    done = [r for r in rows if r["state"] == "complete" and r["latency_ms"] is not None]
    front = [r for r in done if not any(o is not r and o["latency_ms"] <= r["latency_ms"] and o["proxy_AP"] >= r["proxy_AP"]
                                        and (o["latency_ms"] < r["latency_ms"] or o["proxy_AP"] > r["proxy_AP"])
                                        for o in done)]
    return sorted(front, key=lambda r: r["latency_ms"])


def _progress_bar(options: SearchOptions, done: int):
    from tqdm import tqdm
    return tqdm(total=options.trials, initial=min(done, options.trials), desc="search", unit="trial",
                disable=not options.show_progress, dynamic_ncols=True)


def run_search(options: SearchOptions, evaluate: Optional[Callable] = None,
               progress: Callable[[str], None] = print) -> SearchSummary:
    """Run trials of ``options``' study until it has ``options.trials`` finished ones (counting every
    worker's), then write the outputs; returns the summary. ``evaluate(architecture, folder) ->
    {"AP", "latency_ms", ...}`` replaces the real work (tests); ``target_ms`` must then be given."""
    from optuna.trial import TrialState

    from mobile_spinenet.data.readers import split_folders
    from mobile_spinenet.search.space import sample

    options.validate()
    train_dir, val_dir = split_folders(options.data, options.val)
    _check_data(train_dir, val_dir)
    os.makedirs(options.out, exist_ok=True)
    settings = options.settings(train_dir, val_dir)
    study = open_study(options, settings, sampler_seed=worker_seed(options))
    evaluator = evaluate or Evaluator(options, train_dir, val_dir)
    target_ms = options.target_ms if evaluate is not None else evaluator.target_ms()
    if target_ms is None:
        raise ValueError("an evaluate function needs --target-ms")
    finished = lambda: len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))  # noqa: E731
    bar = _progress_bar(options, finished())
    if isinstance(evaluator, Evaluator):
        evaluator.stage = lambda text: bar.set_postfix_str(text)
    failures = 0
    try:
        if options.baselines:
            bar.set_postfix_str(f"baselines {', '.join(options.baselines)}")
            run_baselines(options, evaluator, progress)
            _write_outputs(study, options, target_ms)  # the baselines in summary.md before the first trial ends
        while True:
            recover_stale_trials(study, options.out, progress)  # a worker that died meanwhile: its trial again
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            done = finished()
            bar.n = min(done, options.trials)
            bar.refresh()
            if done + running >= options.trials:
                break
            trial = study.ask()
            lock = trial_lock(options.out, trial.number).acquire()  # a new trial: nobody else holds it
            try:
                trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
                values = _run_trial(trial, options, sample, evaluator, target_ms, progress)
                study.tell(trial, values)
                failures = 0
            except KeyboardInterrupt:
                raise
            except Exception as error:  # one architecture that cannot be trained does not end the search
                message = " ".join(str(error).split())[:300] or type(error).__name__
                trial.set_user_attr("error", message)
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                progress(f"trial {trial.number} failed: {message}")
                if failures >= MAX_FAILURES_IN_A_ROW:
                    raise ValueError(f"{failures} trials in a row failed (the last: {message}); stopped") from None
            finally:
                lock.release()
            best = _best(_write_outputs(study, options, target_ms), options)
            if best:
                bar.set_postfix_str(f"best: trial {best[0]['trial']}, proxy AP {best[0]['proxy_AP']:.2f} at "
                                    f"{best[0]['latency_ms']:.2f} ms (target {target_ms:.2f})")
    finally:
        bar.close()
    rows = _write_outputs(study, options, target_ms)
    return SearchSummary(finished=sum(r["state"] == "complete" for r in rows),
                         failed=sum(r["state"] == "fail" for r in rows), best=_best(rows, options),
                         pareto=pareto_front(rows), target_ms=target_ms, out=options.out,
                         baselines=baseline_rows(options, target_ms))


def _write_outputs(study, options: SearchOptions, target_ms: float) -> list:
    """Write trials.csv, pareto.png, summary.md and best/ from the study as it is now, one worker at
    a time (``OUT/outputs.lock``), so the files always show the latest rows; returns those rows."""
    from mobile_spinenet.io_utils import exclusively
    from mobile_spinenet.search.report import write_outputs

    with exclusively(os.path.join(options.out, "outputs.lock")):
        rows = [_trial_row(t) for t in study.get_trials(deepcopy=False)]
        write_outputs(options.out, rows, target_ms, options, _best(rows, options), pareto_front(rows),
                      baseline_rows(options, target_ms))
    return rows


def _best(rows: list, options: SearchOptions) -> list:
    done = [r for r in rows if r["state"] == "complete"]
    return sorted(done, key=lambda r: -r["objective"])


def architecture_folder(out: str, digest: str) -> str:
    """Where an architecture's work lives: ``OUT/archs/<digest>/``."""
    return os.path.join(out, "archs", digest)


def evaluate_once(architecture, folder: str, evaluate, progress: Callable[[str], None] = print) -> tuple:
    """``(result, reused)``: the architecture's result from ``folder/result.json``, evaluated (and
    written) only if no worker has done it yet; a worker evaluating it meanwhile is waited for."""
    from mobile_spinenet.architecture import write_architecture

    result_path = os.path.join(folder, "result.json")
    result = _read_json(result_path)
    if result is not None:
        return result, True
    lock = architecture_lock(folder, progress)
    try:
        result = _read_json(result_path)  # another worker may have finished it while this one waited
        if result is not None:
            return result, True
        write_architecture(architecture, os.path.join(folder, "architecture.yaml"))
        started = time.perf_counter()
        result = {**evaluate(architecture, folder), "minutes": round((time.perf_counter() - started) / 60, 2)}
        write_json_atomically(result_path, result)
        return result, False
    finally:
        lock.release()


def _run_trial(trial, options: SearchOptions, sample, evaluate, target_ms: float,
               progress: Callable[[str], None] = print) -> list:
    started = time.perf_counter()
    architecture = sample(options.space, trial)
    digest = architecture.digest()
    trial.set_user_attr("digest", digest)
    result, reused = evaluate_once(architecture, architecture_folder(options.out, digest), evaluate, progress)
    for key in ("AP", "AP50", "latency_ms", "latency_ratio", "multiply_adds", "median_ms", "reference_median_ms"):
        if result.get(key) is not None:
            trial.set_user_attr(key, result[key])
    trial.set_user_attr("reused", reused)
    trial.set_user_attr("minutes", round((time.perf_counter() - started) / 60, 2))
    return objective_values(options, result["AP"], result["latency_ms"], target_ms)


def _baseline_row(options: SearchOptions, model_id: str, result: dict, target_ms: float) -> dict:
    from mobile_spinenet.architecture import paper_architecture

    values = objective_values(options, result["AP"], result["latency_ms"], target_ms)
    return {"model": model_id, "architecture": paper_architecture(model_id).digest(), "proxy_AP": result["AP"],
            "proxy_AP50": result.get("AP50"), "latency_ms": result["latency_ms"],
            "latency_ratio": result.get("latency_ratio"),
            "multiply_adds_M": result["multiply_adds"] / 1e6 if result.get("multiply_adds") else None,
            "objective": values[0] if options.objective == "mnas" else None,
            "minutes": result.get("minutes")}


def baseline_rows(options: SearchOptions, target_ms: float) -> list:
    """The baselines evaluated so far (by any worker), in ``--baselines`` order."""
    from mobile_spinenet.architecture import paper_architecture

    rows = []
    for model_id in options.baselines:
        result = _read_json(os.path.join(architecture_folder(options.out, paper_architecture(model_id).digest()),
                                         "result.json"))
        if result is not None:
            rows.append(_baseline_row(options, model_id, result, target_ms))
    return rows


def run_baselines(options: SearchOptions, evaluate, progress: Callable[[str], None] = print) -> None:
    """Evaluate each ``--baselines`` model (the paper's architecture of that id) with the trials'
    proxy and oracle, once per search folder; they are reported beside the trials, not in the study."""
    from mobile_spinenet.architecture import paper_architecture

    for model_id in options.baselines:
        architecture = paper_architecture(model_id)
        result, _ = evaluate_once(architecture, architecture_folder(options.out, architecture.digest()), evaluate,
                                  progress)
        progress(f"baseline {model_id}: proxy AP {result['AP']:.2f} at {result['latency_ms']:.2f} ms")


def _check_data(train_dir: str, val_dir: str) -> None:
    from mobile_spinenet.data.readers import read_dataset

    for what, path in (("training", train_dir), ("val", val_dir)):
        if len(read_dataset(path)) == 0:
            raise ValueError(f"--data: the {what} set {path} has no images")


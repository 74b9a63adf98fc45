"""Which worker of a multi-worker run this process is (``--strategy multiworker``, ``TF_CONFIG``),
and what follows from it. No TensorFlow here: the command reads the role before TensorFlow loads.

Worker 0 is the *chief* (the ``chief`` task when the cluster names one, else ``worker`` 0, as
``tf.distribute`` counts them). The chief owns the run directory: config, logs, metrics, plots,
TensorBoard, checkpoints, the final weights and ``run.json``. Every other worker keeps what the
strategy makes it write (its copies of the checkpoints: saving reads batch norm's statistics,
which the workers aggregate together) under ``OUT/workers/<k>/``, holds that folder's lock, and
removes it when the run ends; it does not validate (the chief does, once)."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

WORKERS_DIR = "workers"


@dataclass(frozen=True)
class WorkerRole:
    index: int = 0  # this worker's place in the cluster (0: the chief)
    addresses: tuple = field(default=("",))  # host:port of every worker, in that order
    tasks: tuple = field(default=(("worker", 0),))  # TF_CONFIG's (type, index) of every worker, in that order

    @property
    def count(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def several(self) -> bool:
        return self.count > 1

    def own_dir(self, run_dir: str) -> str:
        """Where this worker writes: the run directory for the chief, ``OUT/workers/<k>`` otherwise."""
        return run_dir if self.is_chief else os.path.join(run_dir, WORKERS_DIR, str(self.index))

    def describe(self, index: int) -> str:
        return f"worker {index} ({self.addresses[index]})" if 0 <= index < self.count else f"worker {index}"


def worker_role(strategy: str, environ=os.environ) -> WorkerRole:
    """The role of this process: the only worker unless ``strategy`` is ``multiworker``, else read
    from ``TF_CONFIG`` (a one-line error naming what is wrong with it)."""
    if strategy != "multiworker":
        return WorkerRole()
    text = environ.get("TF_CONFIG")
    if not text:
        raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task of this "
                         "worker; docs/distributed.md)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    cluster, task = config.get("cluster") if isinstance(config, dict) else None, \
        config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError('TF_CONFIG needs "cluster" ({"worker": ["host:port", ...]}) and "task" '
                         '({"type": "worker", "index": k})')
    order = [("chief", i, a) for i, a in enumerate(cluster.get("chief") or [])] + \
            [("worker", i, a) for i, a in enumerate(cluster.get("worker") or [])]
    if not order:
        raise ValueError('TF_CONFIG cluster names no "chief" or "worker" task')
    me = (task.get("type"), task.get("index", 0))
    for position, (kind, index, _) in enumerate(order):
        if (kind, index) == me:
            return WorkerRole(position, tuple(a for _, _, a in order), tuple((k, i) for k, i, _ in order))
    raise ValueError(f"TF_CONFIG task {me[0]}:{me[1]} is not in its cluster "
                     f"({', '.join(f'{k}:{i}' for k, i, _ in order)})")


TASK_IN_ERROR = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")


def lost_peer(message: str, role: WorkerRole) -> str:
    """The other worker a collective's error message names (TensorFlow writes
    ``/job:worker/replica:0/task:k``), with its address; ``a peer`` when it names no other one."""
    for kind, index in TASK_IN_ERROR.findall(message):
        task = (kind, int(index))
        if task in role.tasks and role.tasks.index(task) != role.index:
            return role.describe(role.tasks.index(task))
    return "a peer"


class PeerLost(RuntimeError):
    """A multi-worker run stopped because another worker was lost; its message is the one line the
    command prints."""

    @classmethod
    def of(cls, error: BaseException, role: WorkerRole, step: int, checkpoints_dir: str) -> "PeerLost":
        first = (getattr(error, "message", None) or str(error)).strip().splitlines()
        return cls(f"{role.describe(role.index)}: lost {lost_peer(str(error), role)} at step {step} "
                   f"({type(error).__name__}: {first[0][:160] if first else ''}); the run's last checkpoint is in "
                   f"{checkpoints_dir}; start every worker again with --resume")

"""``tf.distribute`` strategies by name."""
from __future__ import annotations

from mobile_spinenet.backend import tf

# what a collective raises on the workers left when a peer dies or stops
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.InternalError, tf.errors.CancelledError,
               tf.errors.DeadlineExceededError, tf.errors.AbortedError)


def make_strategy(name: str = "default", tpu: str = ""):
    """``default`` (one device), ``mirrored`` (all local GPUs, or CPUs), ``multiworker``
    (``TF_CONFIG``), or ``tpu`` (``tpu`` names the TPU; empty for a local/Colab TPU)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if not tf.config.list_logical_devices("GPU") and len(tf.config.list_logical_devices("CPU")) > 1:
            # No GPU: mirror over the logical CPUs (how the kit tests it on a 2-core machine).
            return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        from mobile_spinenet.training.workers import worker_role
        worker_role(name)  # TF_CONFIG checked: one line naming what is wrong
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored, multiworker or tpu")

"""``tf.distribute`` strategies by name."""
from __future__ import annotations

import json
import os

from mobile_spinenet.backend import tf


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
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable "
                             "(cluster and task of this worker)")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as error:
            raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored, multiworker or tpu")

"""What every subcommand shares."""
from __future__ import annotations

import logging


def setup_logging() -> None:
    """INFO from the kit, errors only from TensorFlow and friends."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

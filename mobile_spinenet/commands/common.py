"""What every subcommand shares."""
from __future__ import annotations

import argparse
import logging
import math


def setup_logging() -> None:
    """INFO from the kit, errors only from TensorFlow and friends."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "absl", "h5py", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def parse_ints(text: str, flag: str) -> tuple:
    """``"1,2"`` -> ``(1, 2)``; a clear error naming ``flag`` otherwise."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated whole numbers, got {text!r}") from None


def comma_list(text: str) -> tuple:
    """An argparse ``type``: ``"a,b"`` -> ``("a", "b")`` (empty parts dropped; nothing is an error)."""
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return parts


def _number(kind, minimum, strict: bool):
    """An argparse ``type`` that refuses values below ``minimum`` before any work (and before
    TensorFlow loads): ``--batch 0`` fails at once, naming the flag and the value."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


positive_int = _number(int, 1, False)
non_negative_int = _number(int, 0, False)
finite_float = _number(float, None, False)
positive_float = _number(float, 0, True)
non_negative_float = _number(float, 0, False)


def number_pair(text: str) -> list:
    """An argparse ``type`` for ``MIN,MAX``: two finite numbers."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two numbers), got {text!r}")
    return [finite_float(part) for part in parts]


def unit_interval(text: str) -> float:
    """An argparse ``type`` for a score or share in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1, got {text}")
    return value


def yolo_splits(data: str, val):
    """``(train, val)`` for a training command: a YOLO data.yaml's train: and (unless --val is
    given) its val: split when it has one; other datasets as given."""
    from mobile_spinenet.data.readers import split_of, yolo
    if not yolo.is_yolo_data_file(data):
        return data, val
    return split_of(data, "train"), val or (split_of(data, "val") if "val" in yolo.read_data_file(data).splits
                                             else None)

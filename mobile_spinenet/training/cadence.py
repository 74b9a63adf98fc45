"""Which epochs the training loop closes with a validation (after re-estimating batch norm for
it) and a redrawn ``curves.png``: every ``validate_every`` epochs and always the last.

Validation never changes the trained weights (it reads them; the batch-norm re-estimate writes
only the moving statistics, which training-mode batch norm does not use), so the cadence is free
to follow cost: by default (``validate_every: null``) it is as sparse as keeps the validation's
forward passes near ``VALIDATION_BUDGET`` of the training's work. On the 4,000-image demo set
that is every second epoch; on a ~100-image set with 17 val images, every ~20 epochs (there an
epoch is 5 steps, and validating each one took as long as training it)."""
from __future__ import annotations

import math
from typing import Optional

VALIDATION_BUDGET = 0.02  # share of the training's work the default cadence spends validating
TRAIN_PASSES_PER_IMAGE = 3.0  # a training step's forward and backward cost about three forward passes


def validation_interval(validate_every: Optional[int], train_images_per_epoch: int, bn_images: int,
                        val_images: int) -> int:
    """Epochs between validations: ``validate_every`` when set, else the sparsest cadence whose
    forward passes (``bn_images`` for the batch-norm re-estimate plus ``val_images``) stay within
    :data:`VALIDATION_BUDGET` of training ``train_images_per_epoch`` per epoch."""
    if validate_every is not None:
        return int(validate_every)
    work = bn_images + val_images
    if work <= 0:
        return 1
    return max(1, math.ceil(work / (VALIDATION_BUDGET * TRAIN_PASSES_PER_IMAGE * max(1, train_images_per_epoch))))


def closes_with_validation(epoch: int, epochs: int, interval: int) -> bool:
    """Whether 1-based ``epoch`` of ``epochs`` (the last may be partial) is validated."""
    return epoch == epochs or epoch % interval == 0

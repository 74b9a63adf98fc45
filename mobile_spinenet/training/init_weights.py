"""Start a run from another run's weights (``train --init RUN``): every layer of the new model that
the other run's model has too (same name, same weight shapes) takes its weights; the rest keep
their fresh initialisation. A RetinaNet run of a SpineNet id initialises the backbone of a Mask
R-CNN on the same id, a detector's backbone a classifier's, a run at one input size a run at
another (the convs do not depend on the size)."""
from __future__ import annotations

import logging

log = logging.getLogger("mobile_spinenet.train")


def leaf_layers(model) -> dict:
    """``{name: layer}`` of every layer with weights, looking inside nested models."""
    found = {}
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model (Mask R-CNN's pyramid and heads)
            found.update(leaf_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def transfer_weights(target, source) -> tuple[int, int]:
    """Copy the weights of every layer ``target`` shares with ``source`` (by name, every weight of
    the same shape). Returns ``(weights copied, weights of target)``, counted as tensors."""
    theirs = leaf_layers(source)
    copied = total = 0
    for name, layer in leaf_layers(target).items():
        total += len(layer.weights)
        other = theirs.get(name)
        if other is None or [w.shape for w in other.weights] != [w.shape for w in layer.weights]:
            continue
        layer.set_weights(other.get_weights())
        copied += len(layer.weights)
    return copied, total


def initialise_from_run(model, run_dir: str) -> tuple[int, int]:
    """Give ``model`` the weights of the finished (float) run in ``run_dir`` wherever they fit."""
    from mobile_spinenet.training.runs import open_run

    run = open_run(run_dir)
    if run.is_qat:
        raise ValueError(f"--init {run_dir} is a QAT run; initialise from the float run it was tuned from")
    copied, total = transfer_weights(model, run.model())
    if not copied:
        raise ValueError(f"--init {run_dir} ({run.config.model}) shares no layer with {model.name}: nothing to "
                         f"initialise (use a run of the same model id)")
    log.info("initialised %d of %d weight tensors from %s (%s); the rest start fresh", copied, total, run_dir,
             run.config.model)
    return copied, total

"""Run a classifier over a class-folder dataset and score top-1 and top-5 accuracy. A *classifier
predictor* maps a batch of preprocessed images ``[B, S, S, 3]`` to scores ``[B, K]`` (logits or
probabilities: only their order counts); Keras models and TFLite files both become predictors, so
they are scored through the same preprocessing."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

ClassifierPredictor = Callable[[np.ndarray], np.ndarray]


def top_k_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per example: is the label among the ``k`` highest scores? (ties broken by class index)"""
    k = min(k, scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return (top == np.asarray(labels)[:, None]).any(axis=1)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Class probabilities of logits ``[..., K]`` (shifted by their maximum, so large logits do not overflow)."""
    exp = np.exp(scores - scores.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def keras_classifier(model) -> ClassifierPredictor:
    from mobile_spinenet.backend import tf

    forward = tf.function(lambda images: tf.cast(model(images, training=False), tf.float32), reduce_retracing=True)
    return lambda images: np.asarray(forward(images))


def tflite_classifier(interpreter) -> ClassifierPredictor:
    """Exported classifiers take one image at a time; their one output holds the class scores."""
    from mobile_spinenet.quantization.interpreter import run

    def predict(images):
        rows = []
        for image in images:
            outputs = run(interpreter, image[None])
            if len(outputs) != 1:
                raise ValueError(f"a classifier file has one output (class scores); this one has {sorted(outputs)}")
            rows.append(np.asarray(next(iter(outputs.values())), np.float32).reshape(-1))
        return np.stack(rows)

    return predict


def evaluate_classifier(predict: ClassifierPredictor, dataset, image_size: int, batch_size: int = 32,
                        max_images: Optional[int] = None, resize: str = "letterbox", progress=None) -> dict:
    """``{"top1", "top5", "images"}`` (accuracies in 0..1) of ``predict`` on a class-folder dataset."""
    from mobile_spinenet.data.pipeline import classification_eval_dataset

    top1 = top5 = images = 0
    for batch, labels in classification_eval_dataset(dataset, image_size, batch_size, resize, max_images):
        scores, labels = predict(batch.numpy()), labels.numpy()
        top1 += int(top_k_correct(scores, labels, 1).sum())
        top5 += int(top_k_correct(scores, labels, 5).sum())
        images += len(labels)
        if progress:
            progress(len(labels))
    if not images:
        raise ValueError(f"{dataset.root} has no images to score")
    return {"top1": top1 / images, "top5": top5 / images, "images": images,
            "top1_se": accuracy_standard_error(top1 / images, images)}


def accuracy_standard_error(accuracy: float, images: int) -> float:
    """Standard error (0..1) of an accuracy measured on ``images`` images (binomial): how far
    another sample of that many images from the same source would typically move it."""
    return (accuracy * (1 - accuracy) / images) ** 0.5

"""RetinaNet losses: sigmoid focal loss over all non-ignored anchors and Huber loss on the
positive anchors' box codes, both normalised by the number of positive anchors in the whole
global batch (summed over replicas, so every strategy computes the same loss). The classifier's
loss: softmax cross-entropy with label smoothing, normalised by the images of the global batch."""
from __future__ import annotations

from dataclasses import dataclass

from mobile_spinenet.backend import tf
from mobile_spinenet.data.labeler import IGNORE


@dataclass(frozen=True)
class LossConfig:
    focal_alpha: float = 0.25
    focal_gamma: float = 1.5
    huber_delta: float = 0.1


def focal_loss_sum(logits, target_classes, alpha: float, gamma: float):
    """Summed sigmoid focal loss; ``target_classes`` holds class indices, -1 background, -2 ignore."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.one_hot(tf.maximum(target_classes, -1), tf.shape(logits)[-1], dtype=tf.float32)
    probs = tf.sigmoid(logits)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    p_t = labels * probs + (1 - labels) * (1 - probs)
    alpha_t = labels * alpha + (1 - labels) * (1 - alpha)
    loss = alpha_t * tf.pow(1 - p_t, gamma) * cross_entropy
    weight = tf.cast(target_classes != IGNORE, tf.float32)[..., None]
    return tf.reduce_sum(loss * weight)


def huber_loss_sum(codes, target_codes, positive, delta: float):
    """Summed Huber loss over the positive anchors' four box codes."""
    error = tf.abs(tf.cast(codes, tf.float32) - target_codes)
    quadratic = tf.minimum(error, delta)
    loss = 0.5 * quadratic ** 2 + delta * (error - quadratic)
    return tf.reduce_sum(loss * tf.cast(positive, tf.float32)[..., None])


def detection_losses(outputs: dict, targets: dict, config: LossConfig, num_positives):
    """``(class_loss, box_loss)`` for one replica's share, each divided by the global
    ``num_positives`` so that summing replicas gives the loss of the global batch."""
    normaliser = tf.maximum(tf.cast(num_positives, tf.float32), 1.0)
    class_loss = focal_loss_sum(outputs["classes"], targets["classes"], config.focal_alpha,
                                config.focal_gamma) / normaliser
    box_loss = huber_loss_sum(outputs["boxes"], targets["boxes"], targets["classes"] >= 0,
                              config.huber_delta) / (4.0 * normaliser)
    return class_loss, box_loss


def classification_loss(logits, labels, label_smoothing: float, num_images):
    """Summed softmax cross-entropy of one replica's images against one-hot ``labels`` smoothed by
    ``label_smoothing`` (the true class gets 1 - s + s/K, every class s/K), divided by the global
    ``num_images``."""
    logits = tf.cast(logits, tf.float32)
    classes = tf.shape(logits)[-1]
    targets = tf.one_hot(labels, classes) * (1.0 - label_smoothing) + label_smoothing / tf.cast(classes, tf.float32)
    loss = tf.nn.softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.reduce_sum(loss) / tf.maximum(tf.cast(num_images, tf.float32), 1.0)


def weight_decay_loss(model, weight_decay: float):
    """``weight_decay * sum(w**2) / 2`` over convolution and dense kernels (not BN, not biases)."""
    from mobile_spinenet.training.optimizers import decayed_variables

    kernels = decayed_variables(model)
    if not kernels or not weight_decay:
        return tf.constant(0.0)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])

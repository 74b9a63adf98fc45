"""What a run learns: the parts of training that differ between detection and classification.

The trainer (:mod:`mobile_spinenet.training.trainer`) owns the loop, the strategy, the optimizer,
the weight average, checkpoints, logs and the run directory; a task gives it the data of an
epoch, the loss of a replica's batch, the images precise BN re-estimates statistics on, and the
validation metrics of an epoch:

- :class:`DetectionTask`: a COCO/VOC dataset, anchors labelled in the input pipeline, focal loss
  plus Huber box loss normalised by the positive anchors of the global batch, COCO AP.
- :class:`ClassificationTask`: a class-folder dataset (``data/class_folders.py``), softmax
  cross-entropy with label smoothing averaged over the global batch, top-1/top-5 accuracy.
- :class:`InstanceSegmentationTask`: Mask R-CNN on a COCO dataset with masks; the model computes
  its targets from the ground truth it is given (``forward``), losses of :mod:`mobile_spinenet.rcnn.losses`,
  COCO box and mask AP."""
from __future__ import annotations

from typing import Optional

from mobile_spinenet.backend import tf
from mobile_spinenet.data.pipeline import (InputConfig, classification_eval_dataset, classification_train_dataset,
                                           eval_dataset, statistics_sample, train_dataset)
from mobile_spinenet.data.records import LabelMap
from mobile_spinenet.registry import INSTANCE_SEGMENTATION
from mobile_spinenet.training.config import TrainConfig
from mobile_spinenet.training.losses import LossConfig, classification_loss, detection_losses


def _input_config(config: TrainConfig, image_size: int) -> InputConfig:
    return InputConfig(image_size, config.batch_size, tuple(config.jitter), config.flip, config.seed,
                       config.positive_iou, config.negative_iou, config.resize, config.mosaic)


class Task:
    """What every task shares: the model sees the images alone, and precise BN runs the whole model."""

    def forward(self, model, images, targets):
        """The model's training-mode outputs for a batch."""
        return model(images, training=True)

    def statistics_model(self, model):
        """The part of ``model`` precise BN re-estimates statistics of, called on images."""
        return model

    def predictor(self, model, make):
        """``make(model)``, the validation predictor, built once per model and reused: each one
        traces the model's inference graph, which cost ~11 of the 13 s a 17-image validation took
        at 384 px on SpineNet-49xxs when it was traced anew every epoch."""
        cached = getattr(self, "_predictor", None)
        if cached is None or cached[0] is not model:
            cached = self._predictor = (model, make(model))
        return cached[1]


class DetectionTask(Task):
    name = "detection"
    loss_parts = {"class_loss": "cls", "box_loss": "box"}  # loss part -> its name on the progress bar

    def __init__(self, config: TrainConfig, train_data, image_size: int):
        from mobile_spinenet.zoo import anchor_settings, model_anchors

        self.config, self.train_data, self.image_size = config, train_data, image_size
        self.anchors = model_anchors(config.model, image_size, **anchor_settings(config))
        self.input_config = _input_config(config, image_size)
        self.loss_config = LossConfig(config.focal_alpha, config.focal_gamma, config.huber_delta)

    @property
    def label_map(self) -> LabelMap:
        return self.train_data.label_map

    def data_report(self) -> tuple:
        """``(summary line, full text)`` of the input problems met while reading the data."""
        issues = self.train_data.issues
        return issues.summary(), issues.summary() + "\n" + "".join(m + "\n" for m in issues.messages)

    def epoch_batches(self, epoch: int, start_step: int = 0):
        return train_dataset(self.train_data, self.anchors, self.input_config, epoch, start_step)

    def normaliser(self, targets):
        """This replica's share of what the losses are divided by (summed over replicas)."""
        return tf.reduce_sum(tf.cast(targets["classes"] >= 0, tf.float32))  # positive anchors

    def losses(self, outputs, targets, global_normaliser) -> dict:
        class_loss, box_loss = detection_losses(outputs, targets, self.loss_config, global_normaliser)
        return {"class_loss": class_loss, "box_loss": self.config.box_loss_weight * box_loss}

    def bn_image_batches(self, num_images: int, batch_size: int):
        records = [self.train_data.records[i] for i in statistics_sample(len(self.train_data), num_images,
                                                                          self.config.seed)]
        return (images for images, _, _ in eval_dataset(self.train_data, self.image_size, batch_size, records,
                                                        self.config.resize, skip_unreadable=True))

    def validate(self, model, val_data) -> tuple:
        """``(metrics row fields, log line)`` of ``model`` on ``val_data``."""
        from mobile_spinenet.eval.detector_eval import evaluate_predictor, keras_predictor

        predict = self.predictor(model, lambda m: keras_predictor(m, self.anchors))
        metrics, _ = evaluate_predictor(predict, val_data, self.image_size, max_images=self.config.val_max_images,
                                        resize=self.config.resize)
        return ({"val_AP": metrics["AP"], "val_AP50": metrics["AP50"], "val_AP75": metrics["AP75"]},
                f"val AP {metrics['AP']:.4f} AP50 {metrics['AP50']:.4f}")


class ClassificationTask(Task):
    name = "classification"
    loss_parts = {"class_loss": "ce"}

    def __init__(self, config: TrainConfig, train_data, image_size: int):
        self.config, self.train_data, self.image_size = config, train_data, image_size
        self.anchors = None
        self.input_config = _input_config(config, image_size)

    @property
    def label_map(self) -> LabelMap:
        """Class k is the k-th class folder (in sorted order); its "category id" is k."""
        return LabelMap(list(range(self.train_data.num_classes)), list(self.train_data.class_names))

    def data_report(self) -> tuple:
        counts = ", ".join(f"{name} {n}" for name, n in self.train_data.counts().items())
        summary = f"{self.train_data.root}: {len(self.train_data)} images in {self.train_data.num_classes} classes"
        return summary, f"{summary}\n{counts}\n"

    def epoch_batches(self, epoch: int, start_step: int = 0):
        return classification_train_dataset(self.train_data, self.input_config, epoch, start_step)

    def normaliser(self, labels):
        return tf.cast(tf.shape(labels)[0], tf.float32)  # images

    def losses(self, outputs, labels, global_normaliser) -> dict:
        return {"class_loss": classification_loss(outputs, labels, self.config.label_smoothing, global_normaliser)}

    def bn_image_batches(self, num_images: int, batch_size: int):
        indices = statistics_sample(len(self.train_data), num_images, self.config.seed)
        return (images for images, _ in classification_eval_dataset(self.train_data, self.image_size, batch_size,
                                                                    self.config.resize, indices=indices,
                                                                    skip_unreadable=True))

    def validate(self, model, val_data) -> tuple:
        from mobile_spinenet.eval.classifier_eval import evaluate_classifier, keras_classifier

        metrics = evaluate_classifier(self.predictor(model, keras_classifier), val_data, self.image_size,
                                      max_images=self.config.val_max_images, resize=self.config.resize)
        return ({"val_top1": metrics["top1"], "val_top5": metrics["top5"]},
                f"val top-1 {metrics['top1']:.4f} top-5 {metrics['top5']:.4f} ({metrics['images']} images)")


class InstanceSegmentationTask(DetectionTask):
    name = INSTANCE_SEGMENTATION
    loss_parts = {"rpn_score_loss": "rpn", "rpn_box_loss": "rpnbox", "class_loss": "cls", "box_loss": "box",
                  "mask_loss": "mask"}

    def __init__(self, config: TrainConfig, train_data, image_size: int):
        from mobile_spinenet.rcnn.config import MaskRCNNConfig

        if config.jit_compile:
            raise ValueError("--xla cannot compile Mask R-CNN (its proposal NMS and RoI sampling have no XLA "
                             "kernels); train it without --xla")
        self.config, self.train_data, self.image_size = config, train_data, image_size
        self.anchors = None  # the RPN's anchors live in the model
        self.input_config = _input_config(config, image_size)
        self.rcnn_config = MaskRCNNConfig()

    def epoch_batches(self, epoch: int, start_step: int = 0):
        from mobile_spinenet.data.pipeline import instance_train_dataset

        return instance_train_dataset(self.train_data, self.input_config, epoch, start_step,
                                      mask_size=self.rcnn_config.gt_mask_size)

    def forward(self, model, images, targets):
        return model({"image": images, **targets}, training=True)

    def statistics_model(self, model):
        return model.pyramid  # the RoI heads see RoIs, not images; their BN keeps its moving statistics

    def normaliser(self, targets):
        return tf.constant(1.0)  # the losses are means over this replica's batch; replicas are averaged

    def losses(self, outputs, targets, global_normaliser) -> dict:
        from mobile_spinenet.rcnn.losses import mask_rcnn_losses

        parts = mask_rcnn_losses(outputs, self.label_map.num_classes, self.rcnn_config)
        return {name: value / global_normaliser for name, value in parts.items()}

    def validate(self, model, val_data) -> tuple:
        from mobile_spinenet.eval.instance_eval import evaluate_instances, mask_rcnn_predictor

        metrics, _ = evaluate_instances(self.predictor(model, mask_rcnn_predictor), val_data, self.image_size,
                                        max_images=self.config.val_max_images, resize=self.config.resize)
        box, mask = metrics["bbox"], metrics["segm"]
        return ({"val_AP": box["AP"], "val_AP50": box["AP50"], "val_AP75": box["AP75"], "val_mask_AP": mask["AP"],
                 "val_mask_AP50": mask["AP50"]},
                f"val box AP {box['AP']:.4f} AP50 {box['AP50']:.4f}, mask AP {mask['AP']:.4f} AP50 {mask['AP50']:.4f}")


TASK_CLASSES = {task.name: task for task in (DetectionTask, ClassificationTask, InstanceSegmentationTask)}


def make_task(config: TrainConfig, train_data, image_size: int, val_data: Optional[object] = None):
    """The task of ``config.task``; refuses data of the other kind with a message naming it."""
    from mobile_spinenet.data.class_folders import ClassFolderDataset

    task = TASK_CLASSES[config.task]
    for data in (train_data, val_data):
        if data is not None and isinstance(data, ClassFolderDataset) != (task is ClassificationTask):
            kind = "class folders" if isinstance(data, ClassFolderDataset) else "a detection dataset"
            raise ValueError(f"--task {config.task} cannot train on {kind} "
                             f"({getattr(data, 'root', None) or getattr(data.issues, 'source', '')})")
    return task(config, train_data, image_size)


def read_task_data(task: str, train: str, val: Optional[str] = None) -> tuple:
    """``(train, val)`` datasets of ``task``: COCO/VOC for detection, COCO with masks for instance
    segmentation, class folders for classification; the val set is read with the training set's
    classes."""
    if task == ClassificationTask.name:
        from mobile_spinenet.data.class_folders import read_class_folders

        train_data = read_class_folders(train)
        return train_data, read_class_folders(val, class_names=train_data.class_names) if val else None
    from mobile_spinenet.data.readers import read_dataset

    masks = task == INSTANCE_SEGMENTATION
    train_data = read_dataset(train, masks=masks)
    return train_data, read_dataset(val, label_map=train_data.label_map, masks=masks) if val else None

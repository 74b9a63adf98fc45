"""The training loop: a custom ``tf.distribute`` loop with atomic checkpoints and exact resume.

Resume is exact because everything a step depends on is in the checkpoint or follows from
it: weights, BN statistics, optimizer slots and iteration count (which gives the learning
rate and, with the seeded epoch order of the input pipeline, the data position)."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict
from typing import Callable, Optional

import numpy as np

from mobile_spinenet.backend import keras, tf
from mobile_spinenet.data.pipeline import steps_per_epoch
from mobile_spinenet.data.records import DetectionDataset
from mobile_spinenet.training.cadence import closes_with_validation, validation_interval
from mobile_spinenet.training.checkpoints import AtomicCheckpoints
from mobile_spinenet.training.config import TrainConfig
from mobile_spinenet.training.distribute import PEER_ERRORS, make_strategy
from mobile_spinenet.training.ema import WeightAverage
from mobile_spinenet.training.logs import RunLog, plot_curves
from mobile_spinenet.training.loop_time import LoopClock, format_loop_time
from mobile_spinenet.training.runs import (CHECKPOINTS_DIR, RUN_FILE, WEIGHTS_FILE, Run, RunLock,  # noqa: F401
                                           build_kwargs_of, finished_record)
from mobile_spinenet.training.losses import weight_decay_loss
from mobile_spinenet.training.optimizers import l2_loss_coefficient, make_optimizer
from mobile_spinenet.training.precision import compute_policy, machine_precision
from mobile_spinenet.training.schedule import WarmupDecay
from mobile_spinenet.training.stop import SignalStop
from mobile_spinenet.training.tasks import make_task
from mobile_spinenet.training.workers import PeerLost, worker_role
from mobile_spinenet.training.xla import xla_gradients
from mobile_spinenet.zoo import build_model, check_image_size, get_model_info

log = logging.getLogger("mobile_spinenet.train")
# A loss this many times the lowest one the run has logged (or not finite) stops training. A
# running minimum cannot be raised by the explosion itself; healthy detection losses stay within
# ~10x of it (they fall from ~2 to ~0.2 and single batches spike a few times).
DIVERGENCE_FACTOR = 100.0
# Examples and epochs one input pipeline spans at most (Trainer.span_batches).
PIPELINE_EXAMPLES = 200_000
PIPELINE_EPOCHS = 100


class TrainingDiverged(ValueError):
    """The loss became non-finite or exploded; the checkpoints before it are kept."""


def diverged(checkpoints, what: str, lr: float) -> TrainingDiverged:
    """The one message of a diverged run: what went wrong, the learning rate, the last good checkpoint."""
    latest = checkpoints.latest()
    return TrainingDiverged(
        f"training diverged {what}, at learning rate {lr:.3g}; stopped. Last good checkpoint: "
        f"{os.path.dirname(latest) if latest else 'none yet'}. Lower --lr or raise --batch, and train into a "
        f"new --out")


class Trainer:
    """Builds the model, optimizer and checkpoint of ``config`` under its strategy and trains.

    What differs between detection and classification (data, loss, validation) is the task's
    (:mod:`mobile_spinenet.training.tasks`, chosen by ``config.task``): ``train_data`` and
    ``val_data`` are detection datasets or class-folder datasets accordingly.
    ``model_fn(num_classes) -> keras.Model`` replaces the zoo's builder (QAT passes its
    quantized model here)."""

    def __init__(self, config: TrainConfig, train_data: DetectionDataset, run_dir: str,
                 val_data: Optional[DetectionDataset] = None, model_fn: Optional[Callable] = None,
                 show_progress: bool = True, records: Optional[dict] = None):
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.config, self.train_data, self.val_data, self.run_dir = config, train_data, val_data, run_dir
        self.show_progress = show_progress
        self.records = dict(records or {})  # {file name: JSON} written once the run is accepted
        self.role = worker_role(config.strategy)  # the chief writes the run; other workers their own folder
        self.own_dir = self.role.own_dir(run_dir)
        self.strategy = make_strategy(config.strategy, config.tpu)
        self.replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % self.replicas:
            raise ValueError(f"batch size {config.batch_size} is not divisible by the {self.replicas} replicas")
        self.image_size = config.image_size or get_model_info(config.model).image_size
        check_image_size(config.model, self.image_size, config.task)
        self.task = make_task(config, train_data, self.image_size, val_data)
        self.anchors = self.task.anchors  # None for a classifier
        self.input_config = self.task.input_config
        self.num_classes = self.task.label_map.num_classes
        self.steps_per_epoch = steps_per_epoch(train_data, config.batch_size)
        self.total_steps = max(1, int(round(config.epochs * self.steps_per_epoch)))
        self.epochs = -(-self.total_steps // self.steps_per_epoch)  # the last may be partial
        val_images = 0 if val_data is None else min(len(val_data), config.val_max_images or len(val_data))
        self.validate_every = validation_interval(config.validate_every, self.steps_per_epoch * config.batch_size,
                                                  min(config.precise_bn_images, len(train_data)), val_images)
        self.loop_time = None  # the last fit's LoopClock summary
        self.policy = machine_precision(config.precision, config.strategy)
        if self.policy != "float32":
            log.info("training in %s (--precision %s): layers compute in %s, weights stay float32", self.policy,
                     config.precision, self.policy.split("_")[1])
        sync_bn = self.replicas > 1 if config.sync_bn is None else config.sync_bn
        self._model_fn, self._evaluation_copy = model_fn, None
        with self.strategy.scope(), compute_policy(self.policy):
            keras.utils.set_random_seed(config.seed)
            self.model = self._build_model(sync_bn)
            self.schedule = WarmupDecay(config.resolved_learning_rate(), self.total_steps,
                                        int(round(config.warmup_epochs * self.steps_per_epoch)),
                                        config.schedule, config.step_decay_at, config.step_decay_factors)
            optimizer = make_optimizer(config, self.schedule, self.model)
            if self.policy == "mixed_float16":
                optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.ema = WeightAverage(self.model.trainable_variables, config.ema_decay,
                                     fused=config.fused_updates) if config.ema_decay else None
            parts = {"ema": self.ema} if self.ema else {}
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, **parts)
        self.checkpoints = AtomicCheckpoints(os.path.join(self.own_dir, CHECKPOINTS_DIR), self.checkpoint,
                                             config.keep_checkpoints if self.role.is_chief else 1,
                                             collective=self.role.several)
        # XLA compiles the per-replica forward and backward pass (not the optimizer update nor the
        # all-reduce, so every strategy can use it); the numbers are the same up to float rounding
        # (tests/test_training_speed.py).
        self._loss_and_gradients = (tf.function(self._replica_loss_and_gradients, jit_compile=True)
                                    if config.jit_compile else self._replica_loss_and_gradients)
        self._train_step = tf.function(self._distributed_step)

    # -- one step -------------------------------------------------------------------------
    def _build_model(self, sync_bn: bool):
        """The run's model (``model_fn``'s when given), in the caller's strategy scope and policy."""
        if self._model_fn is not None:
            return self._model_fn(self.num_classes)
        config = self.config
        return build_model(config.model, **build_kwargs_of(config, self.image_size, self.num_classes), sync_bn=sync_bn,
                           stochastic_depth=config.stochastic_depth, dropblock_keep_prob=config.dropblock_keep_prob,
                           bn_momentum=config.bn_momentum)

    def _replica_loss_and_gradients(self, images, targets, global_share):
        """One replica's loss parts and (unscaled) gradients for its share of the batch."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.task.forward(self.model, images, targets)
            if self.policy != "float32":  # the losses and their sums in float32
                outputs = tf.nest.map_structure(
                    lambda t: tf.cast(t, tf.float32) if t.dtype in (tf.bfloat16, tf.float16) else t, outputs)
            parts = self.task.losses(outputs, targets, global_share)
            l2_loss = weight_decay_loss(self.model, self.l2_coefficient) / self.replicas
            loss = tf.add_n(list(parts.values())) + l2_loss
            if self.model.losses:
                loss += tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses]) / self.replicas
            scaled = self.optimizer.get_scaled_loss(loss) if self.policy == "mixed_float16" else loss
        with xla_gradients() if self.config.jit_compile else contextlib.nullcontext():
            gradients = tape.gradient(scaled, variables)
        if self.policy == "mixed_float16":
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        return {"loss": loss, **parts, "l2_loss": l2_loss}, gradients

    @property
    def l2_coefficient(self) -> float:
        return l2_loss_coefficient(self.config)

    def _replica_step(self, images, targets):
        share = self.task.normaliser(targets)  # positive anchors, or images
        global_share = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, share)
        parts, gradients = self._loss_and_gradients(images, targets, global_share)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return parts

    def _distributed_step(self, images, targets):
        parts = self.strategy.run(self._replica_step, args=(images, targets))
        if self.ema is not None:
            self.ema.update()
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in parts.items()}

    def train_step(self, images, targets) -> dict:
        """One optimizer step on a (distributed) batch; returns the summed loss parts."""
        return self._train_step(images, targets)

    # -- data -----------------------------------------------------------------------------
    def epoch_batches(self, epoch: int, start_step: int = 0):
        return self.strategy.experimental_distribute_dataset(self.task.epoch_batches(epoch, start_step))

    def span_batches(self, epoch: int, start_step: int = 0) -> tuple:
        """``(batches, end)``: the batches of epochs ``epoch`` (from ``start_step``) to ``end``
        (exclusive) as one input pipeline, the per-epoch pipelines concatenated, so that the
        prefetch runs on across epoch ends and no epoch pays a pipeline's start and stop (2-3 s
        each, which on a 100-image set is a tenth of an epoch). A span holds up to
        ``PIPELINE_EXAMPLES`` examples and ``PIPELINE_EPOCHS`` epochs: a large set's epochs stay
        one pipeline each.

        Each epoch gives exactly its planned number of batches, so that step and epoch stay in
        step: an epoch that an image failing to decode (dropped with a warning) left a batch short
        takes the missing batches from its own start again."""
        span = max(1, min(PIPELINE_EPOCHS, PIPELINE_EXAMPLES // max(1, self.steps_per_epoch * self.config.batch_size)))
        end = min(self.epochs, epoch + span)
        data = None
        for current in range(epoch, end):
            first = start_step if current == epoch else 0
            planned = min(self.steps_per_epoch, self.total_steps - current * self.steps_per_epoch) - first
            batches = self.task.epoch_batches(current, first).repeat().take(planned)
            data = batches if data is None else data.concatenate(batches)
        # the next epoch's first batches are made while this epoch's last ones train
        return self.strategy.experimental_distribute_dataset(data.prefetch(2)), end

    @property
    def chief_checkpoints_dir(self) -> str:
        """The run's checkpoints (the chief's, when several workers train)."""
        return os.path.join(self.run_dir, CHECKPOINTS_DIR)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    # -- the loop -------------------------------------------------------------------------
    def _prepare_run_dir(self, resume: bool) -> int:
        """The chief creates (or reopens) the run directory; another worker only says where it writes.
        On a resume every worker restores the chief's newest intact checkpoint (another worker reads
        it only: the chief alone tidies its folder)."""
        if self.role.is_chief:
            summary, report = self.task.data_report()
            self.run = Run.create(self.run_dir, self.config, self.task.label_map, self.image_size, resume,
                                  self.records, report)
            log.info("training data: %d images; %s", len(self.train_data), summary)
        else:
            log.info("%s of %d: the chief (%s) writes the run directory; this worker keeps its checkpoint copies "
                     "in %s until the run ends", self.role.describe(self.role.index), self.role.count,
                     self.role.describe(0), self.own_dir)
        left = self.checkpoints.remove_leftovers()  # a writer killed mid-checkpoint (a second Ctrl-C)
        if left:
            log.info("removed %s, left by a checkpoint write that was interrupted", ", ".join(left))
        prefix = None
        if resume:  # the newest intact one
            prefix = (self.checkpoints.restore_latest() if self.role.is_chief else
                      AtomicCheckpoints(self.chief_checkpoints_dir, self.checkpoint).read_latest())
        if prefix:
            log.info("resumed from %s at step %d", prefix, self.step)
        elif self.config.init_from:
            from mobile_spinenet.training.init_weights import initialise_from_run
            initialise_from_run(self.model, self.config.init_from)
        return self.step

    def precise_bn(self, model=None) -> None:
        """Re-estimate BN statistics with the final weights (see :mod:`precise_bn`)."""
        if self.config.precise_bn_images > 0:
            from mobile_spinenet.training.precise_bn import recompute_bn_statistics
            recompute_bn_statistics(self.task.statistics_model(model or self.model),
                                    self.task.bn_image_batches(self.config.precise_bn_images, self.config.batch_size))

    def evaluation_copy(self):
        """Several workers: the model the chief re-estimates batch norm in, validates and writes as
        the final weights, a copy outside the strategy given the trained weights, which every worker
        reads together (batch norm's synchronised statistics are read by a collective); None on the
        other workers. One worker: None (it evaluates the trained model itself)."""
        if not self.role.several:
            return None
        with self.evaluation_weights():
            weights = self.model.get_weights()  # every worker, at the same point of the loop
        if not self.role.is_chief:
            return None
        if self._evaluation_copy is None:
            with compute_policy("float32"):  # (its initial values are overwritten at once)
                self._evaluation_copy = self._build_model(sync_bn=False)
        self._evaluation_copy.set_weights(weights)
        return self._evaluation_copy

    def finished_row(self) -> Optional[dict]:
        """The last epoch's row of a run that already reached ``total_steps``, else None."""
        record = finished_record(self.run_dir)
        if record is None or record.get("steps") != self.total_steps:
            return None
        return record.get("last_epoch") or {}

    def fit(self, resume: bool = False) -> dict:
        """Train to ``total_steps``; returns the last epoch's metrics row. The run directory is
        locked meanwhile; ``resume`` of a finished run changes nothing."""
        with RunLock(self.own_dir):
            if resume:
                row = self.finished_row()
                if row is not None:
                    log.info("%s finished already (%d steps); nothing to resume", self.run_dir, self.total_steps)
                    return row
            row = self._fit(resume)
        if not self.role.is_chief:  # what the strategy made this worker write: done with
            import shutil
            shutil.rmtree(self.own_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # the last worker to finish removes workers/ too
                os.rmdir(os.path.dirname(self.own_dir))
        return row

    def _check_loss(self, loss: float, lowest: float, step: int, lr: float) -> float:
        """The new lowest loss; raises :class:`TrainingDiverged` on a non-finite or exploded one."""
        if np.isfinite(loss) and not loss > DIVERGENCE_FACTOR * lowest:
            return min(lowest, loss)
        why = (f"more than {DIVERGENCE_FACTOR:g}x the lowest so far ({lowest:.4g})" if np.isfinite(loss)
               else "not a finite number")
        raise diverged(self.checkpoints, f"at step {step}: loss {loss:.4g}, {why}", lr)

    def _check_weights(self, step: int) -> None:
        """Raises :class:`TrainingDiverged` when the weights after ``step``'s update are not finite or
        blew up: checked before every checkpoint and the final weights, so neither ever holds them
        (the loss check sees an update's effect only at the next step, and never the last one's)."""
        from mobile_spinenet.training.runs import unhealthy_weights

        problem = unhealthy_weights(self.model.trainable_weights)
        if problem:
            raise diverged(self.checkpoints, f"by step {step}: {problem}", float(self.schedule(step - 1)))

    def _fit(self, resume: bool) -> dict:
        step = self._prepare_run_dir(resume)
        run_log = RunLog(self.own_dir)
        run_log.truncate(step)
        with SignalStop() as stop:
            try:
                last_row = self._steps(step, run_log, stop)
            except PEER_ERRORS as error:
                if not self.role.several:
                    raise
                raise PeerLost.of(error, self.role, self.step, self.chief_checkpoints_dir) from None
        if self.ema is not None:
            self.ema.adopt()  # the run's weights are the averaged ones (BN re-estimated for them above)
        if self.role.is_chief:
            self.save_final(last_row)
        return last_row

    def _steps(self, step: int, run_log: RunLog, stop: SignalStop) -> dict:
        """Train from ``step`` to the end, closing each epoch; returns the last epoch's row. On a
        signal (``stop``) it checkpoints the step it reached and raises :class:`StopRequested`."""
        clock = LoopClock()
        if step < self.total_steps:
            log.info("validating every %d epoch(s) of %d and after the last (--validate-every)",
                     self.validate_every, self.epochs)
        try:
            return self._epochs(step, run_log, stop, clock)
        finally:
            self.loop_time = clock.summary()
            if clock.steps:
                log.info("time: %s", format_loop_time(self.loop_time))

    def _epochs(self, step: int, run_log: RunLog, stop: SignalStop, clock: LoopClock) -> dict:
        from tqdm import tqdm

        lowest = min((float(r["loss"]) for r in run_log.step_rows()), default=float("inf"))
        last_row = run_log.last_epoch_row()
        every = max(1, self.config.checkpoint_every_steps)
        batches, span_end = None, 0
        saved_at = step  # the step of the last checkpoint (or where this process started)
        while step < self.total_steps:
            epoch, start = divmod(step, self.steps_per_epoch)
            steps_this_epoch = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
            epoch_end = epoch * self.steps_per_epoch + steps_this_epoch
            bar = tqdm(total=steps_this_epoch, initial=start, disable=not self.show_progress, unit="step",
                       desc=f"epoch {epoch + 1}/{self.epochs}", dynamic_ncols=True)
            count, started = 0, time.perf_counter()
            if batches is None or epoch >= span_end:
                with clock.timing("input"):
                    batches = None  # ends the previous span's pipeline
                    data, span_end = self.span_batches(epoch, start)
                    batches = iter(data)
            while step < epoch_end:
                with clock.timing("input"):
                    batch = next(batches, None)
                if batch is None:  # fewer batches than planned (an image failed to decode late)
                    batches = None  # the next epoch starts a new pipeline at its first step
                    break
                lr = float(self.schedule(step))
                began = time.perf_counter()
                with clock.timing("steps"):
                    parts = {k: float(v) for k, v in self.train_step(*batch).items()}
                clock.count_step(self.config.batch_size)
                step += 1
                speed = self.config.batch_size / max(time.perf_counter() - began, 1e-9)
                count += 1
                run_log.step({"step": step, "epoch": epoch + 1, **parts, "lr": lr, "images_per_s": speed})
                try:
                    lowest = self._check_loss(parts["loss"], lowest, step, lr)
                except TrainingDiverged:
                    bar.close()
                    run_log.flush_steps()  # the curve up to the blow-up, for the user to see
                    raise
                bar.set_postfix(loss=f"{parts['loss']:.3f}",
                                **{short: f"{parts[part]:.3f}" for part, short in self.task.loss_parts.items()},
                                lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
                bar.update(1)
                # The epoch's last step is checkpointed once the epoch is closed (precise BN,
                # validation, metrics row), so that a checkpoint there always means a closed epoch.
                if step % every == 0 and step < epoch_end:
                    with clock.timing("checkpoints"):
                        run_log.flush_steps()
                        self._check_weights(step)
                        self.checkpoints.save(step)
                    saved_at = step
                if stop.requested and step < epoch_end:  # at the epoch's end, stop once it is closed
                    bar.close()
                    run_log.flush_steps()
                    self._check_weights(step)
                    raise stop.stopped(step, self.total_steps, os.path.dirname(self.checkpoints.save(step)))
            bar.close()
            seconds = time.perf_counter() - started
            run_log.flush_steps()
            # Loss means over the whole epoch's logged steps, not only those since a resume.
            row = {"epoch": epoch + 1, "step": step, "lr": float(self.schedule(step - 1)), "seconds": round(seconds, 2),
                   "images_per_s": count * self.config.batch_size / max(seconds, 1e-9),
                   **run_log.epoch_means(epoch + 1)}
            self._check_weights(step)
            closing = closes_with_validation(epoch + 1, self.epochs, self.validate_every)
            # The batch-norm re-estimate serves validation and the final weights; between
            # validations nothing reads the moving statistics.
            if closing and (self.val_data is not None or step >= self.total_steps):
                with clock.timing("validation"):
                    self._evaluate(row, epoch)
            run_log.epoch(row)  # before the checkpoint: a resumed run never loses a row
            # An epoch's end is checkpointed when it was validated, when --checkpoint-every steps have
            # passed since the last checkpoint, on a stop and at the end (each save took ~2 s for
            # SpineNet-49xxs, a tenth of a 100-image epoch); a kill in between redoes those steps.
            if closing or stop.requested or step - saved_at >= every or step >= self.total_steps:
                with clock.timing("checkpoints"):
                    self.checkpoints.save(step)
                saved_at = step
            if (closing or stop.requested) and self.role.is_chief:
                with clock.timing("plots"):
                    plot_curves(self.run_dir)
            last_row = row
            if stop.requested and step < self.total_steps:
                raise stop.stopped(step, self.total_steps, os.path.dirname(self.checkpoints.latest()))
        return last_row

    def _evaluate(self, row: dict, epoch: int) -> None:
        """The BN re-estimate and validation at a closing epoch, into ``row``: on the trained model
        (one worker), or on the chief's :meth:`evaluation_copy` (several: once, not per worker)."""
        if self.role.several:
            model = self.evaluation_copy()
            if model is None:
                return
            context = contextlib.nullcontext()
        else:
            model, context = self.model, self.evaluation_weights()
        with context:
            self.precise_bn(model)
            if self.val_data is not None:
                fields, line = self.task.validate(model, self.val_data)
                row.update(fields)
                log.info("epoch %d: %s", epoch + 1, line)

    def evaluation_weights(self):
        """The weights validation and the final model use: the moving average when there is one."""
        return self.ema.swapped() if self.ema is not None else contextlib.nullcontext()

    def save_final(self, row: dict) -> str:
        model = self._evaluation_copy if self.role.several else self.model  # BN re-estimated in it
        return self.run.write_final(model, {
            "model": self.config.model, "task": self.config.task, "image_size": self.image_size,
            "num_classes": self.num_classes,
            "steps": self.step, "epochs": self.step / self.steps_per_epoch, "last_epoch": row,
            "validate_every": self.validate_every, "loop_time": self.loop_time,
            "config": asdict(self.config)})

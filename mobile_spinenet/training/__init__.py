"""Training: the recipe as config, losses, learning-rate schedule, tf.distribute strategies,
atomic checkpoints with exact resume, progress, metrics and plots."""

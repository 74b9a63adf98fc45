"""Evaluation and benchmarks (installed as ``mobile_spinenet.eval``)."""

"""TFLite conversion and quantization (installed as ``mobile_spinenet.quantization``)."""

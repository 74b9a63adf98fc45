"""Quantization-aware training, TFLite conversion and export verification
(installed as ``mobile_spinenet.quantization``).

The notebook API mirrors the commands: ``export_tflite(run_dir, out, ExportOptions(quant=...))``."""


def __getattr__(name):  # lazy, so that importing the interpreter helpers does not load tfmot
    if name == "export_tflite":
        from mobile_spinenet.quantization.export_run import export_tflite
        return export_tflite
    raise AttributeError(name)

from setuptools import find_packages, setup

# quantization/ and eval/ live at the top of the repository but install inside the one
# namespace, so an installed kit never puts a module called `eval` into site-packages.
# Subpackages are discovered, never listed: a new one cannot be left out of the wheel.
MOVED = {"quantization": "mobile_spinenet.quantization", "eval": "mobile_spinenet.eval"}
PACKAGES = find_packages(include=["mobile_spinenet", "mobile_spinenet.*"])
for folder, package in MOVED.items():
    PACKAGES += [package] + [f"{package}.{sub}" for sub in find_packages(folder)]

setup(
    name="mobile-spinenet",
    version="0.1.0",
    description="SpineNet detectors for phones and servers: build, train, quantize, export, benchmark, compare.",
    python_requires=">=3.11,<3.12",
    packages=PACKAGES,
    package_dir={"mobile_spinenet": "mobile_spinenet", **{package: folder for folder, package in MOVED.items()}},
    package_data={"mobile_spinenet": ["configs/*.yaml", "configs/base/*.yaml", "configs/recipes/*.yaml", "configs/tasks/*.yaml", "interop/*.json"],
                  "mobile_spinenet.data": ["fashion_mnist_glyphs.npz", "FASHION_MNIST_LICENSE.txt"]},
    install_requires=[
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "tensorflow-model-optimization==0.8.1",
        "ai-edge-litert==2.3.0",
        "pycocotools==2.0.11",
        "numpy==2.4.6",
        "pyyaml==6.0.4",
        "matplotlib==3.11.2",
        "pillow==13.0.0",
        "tqdm==4.70.1",
        "tensorboard==2.21.0",
        "optuna==5.1.0",  # the architecture search (mobile-spinenet search): study, samplers, shared storage
    ],
    # MediaPipe Tasks, a reference consumer in the tests, cannot share this environment (mediapipe 1.2.3
    # needs absl-py 2, tensorflow-model-optimization 0.8.1 absl-py 1; older mediapipe needs numpy < 2 and
    # protobuf < 5): `run.sh` gives it a venv of its own from tests/mediapipe-requirements.txt.
    extras_require={"test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "execnet==2.1.2"]},
    entry_points={"console_scripts": ["mobile-spinenet=mobile_spinenet.cli:main"]},
)

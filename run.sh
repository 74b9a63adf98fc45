#!/usr/bin/env bash
# The kit's entry point on a fresh machine:
#   bash run.sh main   set everything up, then run the main job on the bundled data
#   bash run.sh test   set everything up, then run the test suite (what CI runs)
#   bash run.sh setup  only create/refresh .venv
# Extra arguments after `test` go to pytest (e.g. `bash run.sh test -m slow`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${MOBILE_SPINENET_VENV:-.venv}"
MEDIAPIPE_VENV="$VENV-mediapipe"  # MediaPipe Tasks for the tests: it conflicts with the pinned stack

setup() {
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    python=$(command -v python3.11 || command -v python3)
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $("$python" --version)"
    "$python" -m venv "$VENV"
  fi
  local want have
  want=$(cat setup.py pyproject.toml | sha256sum | cut -c1-16)
  have=$(cat "$VENV/.setup-stamp" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "== installing mobile-spinenet and its pinned stack into $VENV (about a minute)"
    if ! "$VENV/bin/pip" install --disable-pip-version-check -q -e ".[test]" > "$VENV/.pip.log" 2>&1; then
      grep -v "^WARNING: Location" "$VENV/.pip.log" | tail -20 >&2
      echo "install failed (full log: $VENV/.pip.log)" >&2
      exit 1
    fi
    "$VENV/bin/python" -c "import mobile_spinenet.quantization, mobile_spinenet.eval" \
      || { echo "install failed" >&2; exit 1; }
    echo "$want" > "$VENV/.setup-stamp"
  fi
}

setup_mediapipe() {
  local python="${PYTHON:-}" want have
  python=${python:-$(command -v python3.11 || command -v python3)}
  want=$(sha256sum tests/mediapipe-requirements.txt | cut -c1-16)
  have=$(cat "$MEDIAPIPE_VENV/.setup-stamp" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "== installing MediaPipe Tasks (a reference consumer for the tests) into $MEDIAPIPE_VENV"
    [ -x "$MEDIAPIPE_VENV/bin/python" ] || "$python" -m venv "$MEDIAPIPE_VENV"
    if ! "$MEDIAPIPE_VENV/bin/pip" install --disable-pip-version-check -q -r tests/mediapipe-requirements.txt \
        > "$MEDIAPIPE_VENV/.pip.log" 2>&1; then
      grep -v "^WARNING: Location" "$MEDIAPIPE_VENV/.pip.log" | tail -20 >&2
      echo "MediaPipe install failed (full log: $MEDIAPIPE_VENV/.pip.log)" >&2
      exit 1
    fi
    echo "$want" > "$MEDIAPIPE_VENV/.setup-stamp"
  fi
}

main_job() {
  # SpineNet-49xxs/49xs against MobileNetV3-Small/Large-SSDLite (the paper's Table 9 pairs), with the
  # kit's latency variant SpineNet-49xs-lite and MobileNetV3-Large-SSDLite at 320 px as well (ID@SIZE:
  # a second point of the SSDLite curve each model is judged against), on the bundled demo data, starting from the kit's
  # committed demo checkpoints (checkpoints/demo, about an hour of CPU training each): QAT fine-tune,
  # a verified int8 TFLite export, COCO AP of the Keras and int8 models, and the latency benchmark
  # at 1 and 2 threads. MAIN_FROM_SCRATCH=1 trains every
  # model from scratch for MAIN_BUDGET minutes instead (AP at noise level unless the budget is hours).
  # Finished stages are recorded, so an interrupted main job picks up where it stopped.
  local out="${1:-reports/main}" cli="$VENV/bin/mobile-spinenet"
  local models="${MAIN_MODELS:-spinenet49xxs,spinenet49xs,spinenet49xs_lite,mnv3_small_ssdlite,mnv3_large_ssdlite,mnv3_large_ssdlite@320}"
  mkdir -p "$out"
  echo "== [1/2] demo data (Fashion-MNIST photos on canvases, COCO format; the checkpoints' val set) -> $out/data"
  [ -f "$out/data/val/annotations.json" ] || "$cli" data demo --out "$out/data" --train-images 4000 --val-images 200
  if [ -n "${MAIN_FROM_SCRATCH:-}" ]; then
    echo "== [2/2] compare $models from scratch: ${MAIN_BUDGET:-2} min of training each, QAT, int8 export, AP, latency"
    "$cli" compare --data "$out/data" --models "$models" --budget "${MAIN_BUDGET:-2}" --out "$out"
  else
    local spread=()
    [ -f checkpoints/demo/seeds.json ] && spread=(--seed-spread checkpoints/demo/seeds.json)
    echo "== [2/2] compare $models from checkpoints/demo: QAT 0.25 epoch, int8 export, AP, latency"
    "$cli" compare --data "$out/data" --models "$models" --runs-from checkpoints/demo --qat-epochs 0.25 \
      --out "$out" "${spread[@]}"
  fi
  echo "== done: $out/report.md (plots, report.json, runs/, exports/ with labels and verification reports)"
}

wheel_check() {
  # A wheel built from the repo, installed alone (--no-deps) into a throwaway venv that borrows the
  # test venv's packages, must hold every module and data file of the repo and run from outside it
  # (a subpackage left out of setup.py once broke every command of an installed kit).
  local temp site
  temp=$(mktemp -d)
  trap 'rm -rf "$temp"; trap - RETURN' RETURN  # once, on this function's return (a RETURN trap outlives it)
  echo "== wheel check: build, install into a fresh venv, run outside the repo"
  # from a clean copy of the tree: an in-tree build would reuse a stale build/lib and hide a missing package
  mkdir -p "$temp/src"
  if git rev-parse --git-dir >/dev/null 2>&1; then
    git ls-files -co --exclude-standard -z | xargs -0 tar -cf - | tar -xf - -C "$temp/src"
  else
    tar --exclude="./$VENV" --exclude=./build --exclude='*.egg-info' -cf - . | tar -xf - -C "$temp/src"
  fi
  "$VENV/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$temp/dist" "$temp/src" >/dev/null
  "$VENV/bin/python" -m venv --without-pip "$temp/venv"
  site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  "$temp/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
    | xargs -I{} sh -c "echo '$site' > '{}/borrowed-test-venv.pth'"
  "$VENV/bin/pip" --python "$temp/venv/bin/python" install -q --disable-pip-version-check --no-deps \
    "$temp"/dist/*.whl
  (cd "$temp" && "$temp/venv/bin/mobile-spinenet" --help >/dev/null && "$temp/venv/bin/mobile-spinenet" models >/dev/null \
    && "$temp/venv/bin/mobile-spinenet" data demo --out "$temp/demo" --train-images 2 --val-images 1 >/dev/null \
    && "$temp/venv/bin/python" - "$OLDPWD" "$temp" <<'PY'
import os, sys, zipfile, glob
import mobile_spinenet
repo, temp = sys.argv[1], sys.argv[2]
assert mobile_spinenet.__file__.startswith(temp), f"imported {mobile_spinenet.__file__}, not the wheel's"
wheel = zipfile.ZipFile(glob.glob(os.path.join(temp, "dist", "*.whl"))[0]).namelist()
wanted = {"mobile_spinenet": "mobile_spinenet", "quantization": "mobile_spinenet/quantization",
          "eval": "mobile_spinenet/eval"}
missing = []
for folder, package in wanted.items():
    for root, _, names in os.walk(os.path.join(repo, folder)):
        for name in names:
            if name.endswith((".py", ".yaml", ".npz", ".json")) and "__pycache__" not in root:
                inside = os.path.relpath(os.path.join(root, name), os.path.join(repo, folder))
                if f"{package}/{inside}" not in wheel:
                    missing.append(f"{folder}/{inside}")
assert not missing, f"left out of the wheel: {', '.join(missing)}"
print(f"== wheel check passed: {len(wheel)} files, the CLI runs from {temp}")
PY
  ) || { echo "wheel check failed" >&2; exit 1; }
}

setup_model_garden() {
  # TF Model Garden, the reference of tests/test_model_garden_parity.py: --no-deps, since its own
  # requirements would replace the pinned stack; a test-only install, never a runtime dependency.
  local want have
  want=$(sha256sum tests/model-garden-requirements.txt | cut -c1-16)
  have=$(cat "$VENV/.model-garden-stamp" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "== installing TF Model Garden (a reference for the tests, without its dependencies) into $VENV"
    if ! "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps -r tests/model-garden-requirements.txt \
        > "$VENV/.model-garden-pip.log" 2>&1; then
      grep -v "^WARNING: Location" "$VENV/.model-garden-pip.log" | tail -20 >&2
      echo "Model Garden install failed (full log: $VENV/.model-garden-pip.log)" >&2
      exit 1
    fi
    echo "$want" > "$VENV/.model-garden-stamp"
  fi
}

run_tests() {
  wheel_check
  setup_mediapipe
  setup_model_garden
  # two workers, one per core, each taking whole test modules (their shared fixtures stay in one
  # process); `bash run.sh test -n 0` runs them in this one process
  MOBILE_SPINENET_MEDIAPIPE_PYTHON="$(cd "$MEDIAPIPE_VENV" && pwd)/bin/python" "$VENV/bin/python" -m pytest -q \
    --durations=60 -n "${TEST_WORKERS:-2}" --dist loadscope --no-loadscope-reorder "$@"
}

command="${1:-}"
shift || true
case "$command" in
  setup) setup ;;
  main) setup; main_job "$@" ;;
  test) setup; run_tests "$@" ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

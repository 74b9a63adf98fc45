#!/usr/bin/env bash
# The kit's entry point on a fresh machine:
#   bash run.sh main   set everything up, then run the main job on the bundled data
#   bash run.sh test   set everything up, then run the test suite (what CI runs)
#   bash run.sh setup  only create/refresh .venv
# Extra arguments after `test` go to pytest (e.g. `bash run.sh test -m slow`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV="${MOBILE_SPINENET_VENV:-.venv}"

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
    "$VENV/bin/pip" install --disable-pip-version-check -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import mobile_spinenet.quantization, mobile_spinenet.eval" \
      || { echo "install failed" >&2; exit 1; }
    echo "$want" > "$VENV/.setup-stamp"
  fi
}

main_job() {
  # SpineNet-49xxs/49xs against MobileNetV3-Small/Large-SSDLite (the paper's Table 9 pairs) on the
  # bundled demo data: each model gets the same recipe and MAIN_BUDGET minutes of float training,
  # then QAT, a verified int8 TFLite export, COCO AP, and the latency benchmark at 1 and 2 threads.
  # Finished stages are recorded, so an interrupted main job picks up where it stopped.
  local out="${1:-reports/main}" cli="$VENV/bin/mobile-spinenet"
  local models="${MAIN_MODELS:-spinenet49xxs,spinenet49xs,mnv3_small_ssdlite,mnv3_large_ssdlite}"
  mkdir -p "$out"
  echo "== [1/2] demo data (Fashion-MNIST photos on canvases, COCO format) -> $out/data"
  [ -f "$out/data/val/annotations.json" ] || "$cli" data demo --out "$out/data" --train-images 800 --val-images 100
  echo "== [2/2] compare $models: ${MAIN_BUDGET:-2} min of training each, QAT, int8 export, AP, latency"
  "$cli" compare --data "$out/data" --models "$models" --budget "${MAIN_BUDGET:-2}" --out "$out"
  echo "== done: $out/report.md (plots, report.json, runs/, exports/ with labels and verification reports)"
}

run_tests() {
  "$VENV/bin/python" -m pytest -q "$@"
}

command="${1:-}"
shift || true
case "$command" in
  setup) setup ;;
  main) setup; main_job "$@" ;;
  test) setup; run_tests "$@" ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

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
  # spinenet49xxs on the bundled demo data: train, QAT-tune, export verified int8, evaluate, benchmark.
  # Steps whose output exists are skipped, so an interrupted main job picks up where it stopped.
  local out="${1:-reports/main}" cli="$VENV/bin/mobile-spinenet" model=spinenet49xxs
  mkdir -p "$out"
  echo "== [1/6] demo data (Fashion-MNIST photos on canvases, COCO format) -> $out/data"
  [ -f "$out/data/val/annotations.json" ] || "$cli" data demo --out "$out/data" --train-images 800 --val-images 100
  echo "== [2/6] train $model at 256 px, cpu_demo recipe (about 5 minutes on 2 cores)"
  [ -f "$out/runs/$model/run.json" ] || "$cli" train --model "$model" --config cpu_demo --image-size 256 \
      --data "$out/data/train" --val "$out/data/val" --out "$out/runs/$model" --resume
  echo "== [3/6] quantization-aware fine-tuning, 1 epoch"
  [ -f "$out/runs/$model-qat/run.json" ] || "$cli" qat --from "$out/runs/$model" --data "$out/data/train" \
      --val "$out/data/val" --epochs 1 --out "$out/runs/$model-qat" --resume
  echo "== [4/6] export int8 TFLite from QAT, verified against Keras on the val set"
  [ -f "$out/exports/${model}_qat_int8.tflite" ] || "$cli" export "$out/runs/$model-qat" --quant int8 \
      --verify-images 100 --out "$out/exports/${model}_qat_int8.tflite"
  echo "== [5/6] COCO AP of the int8 file on the val set"
  "$cli" eval "$out/exports/${model}_qat_int8.tflite" --data "$out/data/val" | tee "$out/eval_${model}_qat_int8.txt"
  echo "== [6/6] latency (ai-edge-litert, XNNPACK) and the model zoo against the paper's Table 9"
  "$cli" benchmark "$out/exports/${model}_qat_int8.tflite" --threads 1,2 --runs 100 | tee "$out/benchmark_${model}_qat_int8.md"
  "$cli" summary --paper --tables table9 | tee "$out/model_zoo_table9.md"
  echo "== done: $out (runs/, exports/ with .labels.txt and .json reports, eval_*.txt, benchmark_*.md, model_zoo_table9.md)"
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

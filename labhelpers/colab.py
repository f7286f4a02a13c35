"""Colab plumbing: the repository address (set here only), the Open-in-Colab badge and the install cell.

Every notebook's first cell is :func:`badge_markdown` and its install cell is :func:`install_cell_source`,
character for character; ``tests/test_notebooks.py`` enforces it, so changing ``REPOSITORY`` here and
pasting the new cells is the whole move (the test names every notebook that still differs).
"""

from __future__ import annotations

import sys

REPOSITORY = "sft-lab/sft-lab"  # GitHub owner/name: the one place the repository address is set
BRANCH = "main"
# Tested versions for Colab. torch is not listed: Colab's own CUDA build stays (a pin would replace it).
COLAB_REQUIREMENTS = (
    "transformers>=5.20,<6", "trl>=1.16,<2", "datasets>=4.0,<6", "accelerate>=1.10,<2",
    "peft>=0.17,<1", "gguf>=0.17,<1", "papermill>=2.6,<3",
)


def in_colab() -> bool:
    """True inside a Google Colab runtime.

    >>> in_colab()
    False
    """
    return "google.colab" in sys.modules


def badge_markdown(notebook_path: str) -> str:
    """Markdown of the Open-in-Colab badge for a notebook path inside the repository.

    >>> print(badge_markdown("notebooks/01_setup.ipynb"))
    [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sft-lab/sft-lab/blob/main/notebooks/01_setup.ipynb)
    """
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{notebook_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def install_cell_source() -> str:
    """Source of the install cell: installs in Colab and, when ``USE_DRIVE`` is set, mounts Google Drive
    and keeps the run folder there (``$LAB_RUN_ROOT``) so a disconnect costs minutes, not the run.
    Does nothing outside Colab.

    >>> "git+https://github.com/sft-lab/sft-lab@main" in install_cell_source()
    True
    """
    requirements = " ".join(f'"{r}"' for r in COLAB_REQUIREMENTS)
    return "\n".join([
        "# Install cell: in Colab it installs the tested versions and labhelpers; locally it does nothing.",
        "import os, sys",
        "",
        "USE_DRIVE = False  # Colab: True keeps checkpoints and results on Google Drive across disconnects",
        'if "google.colab" in sys.modules:',
        f"    !pip install -q {requirements}",
        f'    !pip install -q --no-deps "labhelpers @ git+https://github.com/{REPOSITORY}@{BRANCH}"',
        "    if USE_DRIVE:",
        "        from google.colab import drive",
        "",
        '        drive.mount("/content/drive")',
        '        os.environ["LAB_RUN_ROOT"] = "/content/drive/MyDrive/sft-lab-runs"',
    ])

"""The Colab cells every notebook opens with, generated from the one place the versions live (pyproject.toml).

``python -m tools.nbtools clean`` writes :func:`badge_markdown` and :func:`install_cell_source` into each solution
and ``build`` into each student copy, so a version changed in ``pyproject.toml`` reaches every notebook on the next
build, and ``check`` (CI) fails while one still differs. ``REPOSITORY`` is the one place the address is set.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPOSITORY = "sft-lab/sft-lab"  # GitHub owner/name: the one place the repository address is set
BRANCH = "main"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
NOT_IN_COLAB = ("torch",)  # Colab's own CUDA build of torch stays: a pin would replace it with a multi-GB download


def _name(requirement: str) -> str:
    """The distribution name of a requirement string.

    >>> _name("transformers>=5.20,<6"), _name("kernels >= 0.18")
    ('transformers', 'kernels')
    """
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]


def project_requirements(pyproject: Path = PYPROJECT) -> dict[str, list[str]]:
    """``{"core": [...], <extra>: [...]}`` read from ``pyproject.toml``.

    >>> "lab" in project_requirements() and any(r.startswith("trl") for r in project_requirements()["core"])
    True
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    return {"core": list(project["dependencies"]), **project.get("optional-dependencies", {})}


def colab_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """What the install cell pins: the core and ``lab`` requirements, without torch.

    >>> [r for r in colab_requirements() if r.startswith("torch")]
    []
    """
    groups = project_requirements(pyproject)
    return [r for r in groups["core"] + groups["lab"] if _name(r) not in NOT_IN_COLAB]


def badge_markdown(notebook_path: str) -> str:
    """Markdown of the Open-in-Colab badge for a notebook path inside the repository.

    >>> print(badge_markdown("notebooks/01_setup.ipynb"))
    [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sft-lab/sft-lab/blob/main/notebooks/01_setup.ipynb)
    """
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{notebook_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def install_cell_source(pyproject: Path = PYPROJECT) -> str:
    """Source of the install cell: in Colab it installs the tested versions (and, on compute capability >= 8, the
    ``kernels`` package that serves flash-attention 2), and with ``USE_DRIVE`` keeps the run folder on Google Drive
    (``$LAB_RUN_ROOT``) so a disconnect costs minutes, not the run. Does nothing outside Colab.

    >>> "git+https://github.com/sft-lab/sft-lab@main" in install_cell_source()
    True
    """
    requirements = " ".join(f'"{r}"' for r in colab_requirements(pyproject))
    flash = " ".join(f'"{r}"' for r in project_requirements(pyproject)["flash"])
    return "\n".join([
        "# Install cell: in Colab it installs the tested versions and labhelpers; locally it does nothing.",
        "import os, sys",
        "",
        "USE_DRIVE = False  # Colab: True keeps checkpoints and results on Google Drive across disconnects",
        'if "google.colab" in sys.modules:',
        f"    !pip install -q {requirements}",
        f'    !pip install -q --no-deps "labhelpers @ git+https://github.com/{REPOSITORY}@{BRANCH}"',
        "    import torch",
        "",
        "    if torch.cuda.is_available() and torch.cuda.get_device_capability(0)[0] >= 8:",
        f"        !pip install -q {flash}  # flash-attention 2 from a prebuilt hub kernel, no compiling",
        "    if USE_DRIVE:",
        "        from google.colab import drive",
        "",
        '        drive.mount("/content/drive")',
        '        os.environ["LAB_RUN_ROOT"] = "/content/drive/MyDrive/sft-lab-runs"',
    ])

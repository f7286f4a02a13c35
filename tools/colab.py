"""The Colab cells every notebook opens with, generated from the locked stack (``requirements.lock``).

``python -m tools.nbtools clean`` writes :func:`badge_markdown` and :func:`install_cell_source` into each solution
and ``build`` into each student copy, so a refreshed lock (``python -m tools.lock refresh``) reaches every notebook on
the next build, and ``check`` (CI) fails while one still differs. The cell pins exactly the lock's ``colab`` group:
the versions CI installed and tested, companions included (``kernels`` because transformers requires it); torch,
the Jupyter kernel and ipywidgets stay Colab's own (``tools/lock.py`` says why: Colab's front end renders the
ipywidgets it ships with its built-in manager, and ``tests/test_widgets_colab.py`` runs the widgets on ipywidgets 7). Where labhelpers comes from is
``[project.urls] Colab-install`` in pyproject.toml, pinned to this version's release tag.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tools import lock

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pinned_source(source: str, where: str = "[project.urls] Colab-install") -> str:
    """``source`` when it is a git URL pinned to a tag or commit, else a ValueError naming ``where`` it came from.

    >>> pinned_source("git+https://github.com/uni/sft-class@2026-spring")
    'git+https://github.com/uni/sft-class@2026-spring'
    >>> pinned_source("git+https://github.com/uni/sft-class@main", "--source")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --source = 'git+https://github.com/uni/sft-class@main': pin it to a release tag or commit ...
    """
    if "@" not in source.split("//", 1)[-1] or source.rsplit("@", 1)[1] in ("main", "master", "HEAD"):
        raise ValueError(f"{where} = {source!r}: pin it to a release tag or commit "
                         "('git+https://github.com/OWNER/NAME@vX.Y.Z'), never a moving branch")
    return source


def labhelpers_source(pyproject: Path = PYPROJECT) -> str:
    """What the install cell hands pip for labhelpers: ``[project.urls] Colab-install``, a git URL pinned to a tag.

    >>> labhelpers_source()
    'git+https://github.com/sft-lab/sft-lab@v0.1.0'
    """
    project = tomllib.loads(pyproject.read_text())["project"]
    return pinned_source(project["urls"]["Colab-install"])


def repository_and_ref(pyproject: Path = PYPROJECT, source: str | None = None) -> tuple[str, str]:
    """(``owner/name``, tag) of the GitHub source the badges open: ``source`` (a release's) or pyproject's.

    >>> repository_and_ref()
    ('sft-lab/sft-lab', 'v0.1.0')
    >>> repository_and_ref(source="git+https://github.com/uni/sft-class.git@2026-spring")
    ('uni/sft-class', '2026-spring')
    """
    source = source or labhelpers_source(pyproject)
    match = re.fullmatch(r"git\+https://github\.com/([^/@]+/[^/@]+?)(?:\.git)?@(.+)", source)
    if not match:
        raise ValueError(f"{source!r}: the Colab source must be git+https://github.com/OWNER/NAME@REF (the badges open "
                         "the notebooks there, the install cell installs labhelpers from there)")
    return match.group(1), match.group(2)


def badge_markdown(notebook_path: str, source: str | None = None) -> str:
    """Markdown of the Open-in-Colab badge for a notebook path inside the repository (``source``, default
    pyproject's Colab-install), at the pinned tag.

    >>> print(badge_markdown("notebooks/01_setup.ipynb"))
    [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/sft-lab/sft-lab/blob/v0.1.0/notebooks/01_setup.ipynb)
    """
    repository, ref = repository_and_ref(source=source)
    url = f"https://colab.research.google.com/github/{repository}/blob/{ref}/{notebook_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def _pin_list(pins: list[str], per_line: int = 4) -> list[str]:
    """The pins as the lines of a Python list literal, a few per line.

    >>> _pin_list(["a==1", "b==2", "c==3"], per_line=2)
    ['        "a==1", "b==2",', '        "c==3",']
    """
    return ["        " + " ".join(f'"{p}",' for p in pins[i:i + per_line]) for i in range(0, len(pins), per_line)]


# The install cell's first line: Colab folds a cell that opens with "# @title" into a titled form.
INSTALL_TITLE = "# @title Install cell (Colab only): the versions CI tested, and labhelpers"


def install_cell_source(lock_path: Path = lock.LOCK, source: str | None = None) -> str:
    """Source of the install cell. In Colab: record the versions present, install exactly the lock's ``colab`` pins
    and labhelpers from its pinned source, stop with what to do when labhelpers does not import, check every pin
    (and ask for a restart if a loaded package changed), and with ``USE_DRIVE`` keep
    what notebooks share on Google Drive while checkpoints stay on the runtime's disk. Does nothing outside Colab.
    ``source`` is where labhelpers comes from (default pyproject's Colab-install; a release passes its own).

    >>> cell = install_cell_source()
    >>> "git+https://github.com/sft-lab/sft-lab@v0.1.0" in cell and '"kernels==' in cell and '"torch==' not in cell
    True
    """
    return "\n".join([
        f"{INSTALL_TITLE} {{ display-mode: \"form\" }}",
        "# In Colab it installs the versions CI tested (requirements.lock) and labhelpers; elsewhere it does nothing.",
        "# Colab shows this cell as a form: the code stays folded, the two settings below are a checkbox and a text box.",
        "import os, sys",
        "",
        "# True keeps what notebooks share (tuned model, metrics, replies) on Google Drive",
        'USE_DRIVE = False  # @param {type:"boolean"}',
        "# where labhelpers comes from: this release, or a zip URL, a Drive folder, a local path",
        f'LABHELPERS_SOURCE = "{source or labhelpers_source()}"  # @param {{type:"string"}}',
        'if "google.colab" in sys.modules:',
        "    PINS = [  # generated from requirements.lock by tools/colab.py: torch, the kernel and ipywidgets stay Colab's",
        *_pin_list(lock.colab_pins(lock_path)),
        "    ]",
        "    from importlib import metadata",
        "",
        "    # what pip will change (the first copy on sys.path wins, as at import), and what is already loaded",
        '    _before = {d.metadata["Name"]: d.version for d in reversed(list(metadata.distributions()))}',
        "    _loaded = list(sys.modules)",
        '    _pins = " ".join(PINS)',
        "    !pip install -q $_pins",
        "    !pip install -q --no-deps $LABHELPERS_SOURCE",
        "    try:",
        "        from labhelpers.base.install import check_installed_pins",
        "    except ImportError:",
        '        raise RuntimeError(f"labhelpers did not install from {LABHELPERS_SOURCE!r} (pip\'s message is above). "',
        '                           "Set LABHELPERS_SOURCE at the top of this cell to another source: a zip of the "',
        '                           "repository, a folder on Google Drive (mount Drive first) or a local path, then "',
        '                           "run this cell again.") from None',
        "    check_installed_pins(PINS, _before, _loaded)",
        "    if USE_DRIVE:",
        "        from google.colab import drive",
        "",
        '        drive.mount("/content/drive")',
        '        os.environ["LAB_RUN_ROOT"] = "/content/drive/MyDrive/sft-lab-runs"  # what notebooks share',
        '        os.environ["LAB_CHECKPOINT_ROOT"] = "/content/sft-lab-checkpoints"  # big and rotated: runtime disk',
    ])

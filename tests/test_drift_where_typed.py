"""Issue 28: an old TRL name typed in 06's TODO cell gets its fix right there, under the TypeError (IPython)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_cell("from labhelpers.base.drift import explain_drift_where_typed; explain_drift_where_typed()")
shell.run_cell("from trl import SFTConfig\\nconfig = SFTConfig(output_dir='/tmp/x', max_seq_length=512)")
shell.run_cell("raise TypeError('an error of the student own')")
"""


def test_the_fix_is_printed_under_the_error_in_the_cell_that_raised_it():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=ROOT)
    text = out.stdout + out.stderr
    assert "API drift: SFTConfig has no 'max_seq_length' any more: use max_length=..." in text, text[-2000:]
    assert text.count("API drift") == 1  # another TypeError is left as it is
    assert "an error of the student own" in text


def test_notebook_06_hooks_it_before_the_todo():
    cells = nbformat.read(ROOT / "solutions" / "06_sft_trainer.ipynb", as_version=4).cells
    hooked = next(i for i, c in enumerate(cells) if "explain_drift_where_typed()" in c.source)
    todo = next(i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", []))
    assert hooked < todo

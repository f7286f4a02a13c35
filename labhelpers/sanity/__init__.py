"""Sanity assistant: catch silent SFT bugs before (check_dataset, preflight), during (SanityMonitor) and after
(postflight) training.

    from labhelpers.sanity import check_dataset, preflight, SanityMonitor, postflight, run_protocol
    check_dataset(rows, tokenizer, sft_config)   # before a trainer exists: columns, lengths vs max_length, duplicates
    report = preflight(trainer)                  # before trainer.train(); report.ok is False on any fail
    trainer.add_callback(SanityMonitor())

CLI: ``python -m labhelpers.sanity --data train.jsonl`` prints the verdict, fixes and findings (exit 1 on a fail,
2 on bad input). Names are imported on first use, so the CLI can reject a bad file before torch is imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {  # name -> submodule that defines it
    "DataCheckConfig": "dataset",
    "Finding": "report",
    "ProtocolResult": "protocol",
    "SanityMonitor": "monitor",
    "SanityReport": "report",
    "check_dataset": "dataset",
    "collated_batches": "preflight",
    "generate_replies": "postflight",
    "generation_findings": "config",
    "hyperparameter_findings": "preflight",
    "lora_findings": "lora",
    "lr_range_test": "protocol",
    "overfit_test": "protocol",
    "plan_run": "config",
    "postflight": "postflight",
    "precision_findings": "preflight",
    "preflight": "preflight",
    "run_protocol": "protocol",
    "schedule_findings": "config",
    "show_example": "preflight",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'labhelpers.sanity' has no attribute {name!r}; exports: {', '.join(__all__)}")
    value = getattr(importlib.import_module(f"labhelpers.sanity.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``labhelpers.sanity.preflight`` / ``.postflight`` the functions, as the eager imports used to.

    Importing a submodule sets the package attribute of the same name to the module; for the two names that are both
    a submodule and the function it exports, store the function instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

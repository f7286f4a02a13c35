"""Sanity assistant: catch silent SFT bugs before (preflight), during (SanityMonitor) and after (postflight) training.

    from labhelpers.sanity import preflight, SanityMonitor, postflight, run_protocol
    report = preflight(trainer)          # before trainer.train(); report.ok is False on any fail
    trainer.add_callback(SanityMonitor())

CLI: ``python -m labhelpers.sanity --data train.jsonl`` prints the preflight report (exit 1 on a fail).
"""

from labhelpers.sanity.monitor import SanityMonitor
from labhelpers.sanity.postflight import generate_replies, postflight
from labhelpers.sanity.preflight import (
    collated_batches,
    hyperparameter_findings,
    precision_findings,
    preflight,
    show_example,
)
from labhelpers.sanity.protocol import ProtocolResult, lr_range_test, overfit_test, run_protocol
from labhelpers.sanity.report import Finding, SanityReport

__all__ = [
    "Finding",
    "ProtocolResult",
    "SanityMonitor",
    "SanityReport",
    "collated_batches",
    "generate_replies",
    "hyperparameter_findings",
    "lr_range_test",
    "overfit_test",
    "postflight",
    "precision_findings",
    "preflight",
    "run_protocol",
    "show_example",
]

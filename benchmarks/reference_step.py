"""The reference step: one plain full fine-tune step of SmolLM2-135M (fp32, batch 4 x 256 tokens, fused AdamW).

Machines of "the same kind" differ by 3.5x and more, so this project reports a duration next to this step,
measured in the same run: ``python -m benchmarks.reference_step`` prints its seconds, ``./lab.sh run`` and
``.ci/run`` print every notebook's and phase's time also as a multiple of it (a unit that travels).
It is ``benchmarks.training_modes``' ``full`` mode (1 warm-up + 3 timed steps, median), in a fresh process.
"""

from __future__ import annotations

from benchmarks.training_modes import run_worker


def reference_step_seconds(steps: int = 3) -> float:
    """Median seconds of the reference step on this machine now (a fresh process; ~20 s with the model load)."""
    return run_worker("full", steps=steps)["median_step_s"]


def in_reference_steps(seconds: float, reference: float) -> str:
    """``seconds`` as a multiple of the reference step, for tables.

    >>> in_reference_steps(150.0, 3.0)
    '50 ref. steps'
    """
    return f"{seconds / reference:.0f} ref. steps"


def main() -> dict:
    seconds = reference_step_seconds()
    print(f"reference step (full fine-tune, fp32, batch 4 x 256, fused AdamW): {seconds:.2f} s")
    return {"reference_step_s": seconds}


if __name__ == "__main__":
    main()

"""benchmarks.gpu_check: clear exit without CUDA; the packed batch it builds is padding-free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.gpu_check import SMOLLM2_135M, example_lengths, packed_batch, padded_batch

ROOT = Path(__file__).resolve().parents[1]


def test_exits_2_with_a_clear_message_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "needs a CUDA GPU" in done.stderr


def test_packed_batch_keeps_every_real_token_in_one_row():
    lengths = example_lengths(4, 32)
    padded = padded_batch(lengths, vocab=50, max_length=32)
    packed = packed_batch(padded)
    assert set(packed) == {"input_ids", "position_ids", "labels"}  # no attention_mask: padding-free
    assert packed["input_ids"].shape == (1, sum(lengths))
    assert torch.equal(packed["input_ids"][0], padded["input_ids"][padded["attention_mask"].bool()])
    assert (packed["position_ids"][0] == 0).sum() == len(lengths)


def test_inline_config_matches_the_offline_model():
    import json

    found = sorted(Path.home().glob(".cache/sft-lab/models/*SmolLM2-135M*/config.json"))
    if not found:
        import pytest

        pytest.skip("offline SmolLM2 not converted yet")
    real = json.loads(found[0].read_text())
    for key, value in SMOLLM2_135M.items():
        want = real["rope_parameters"]["rope_theta"] if key == "rope_theta" else real[key]
        assert value == pytest_approx(want), key


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-6)

"""Smoke tests of the benchmark modules: they import, and their pure helpers compute the right figures (no training)."""

from __future__ import annotations

import importlib
import json

import pytest

from benchmarks.__main__ import BENCHMARKS


@pytest.mark.parametrize("name", ["packing", "trainer_overhead"])
def test_benchmark_is_registered_and_imports(name):
    assert name in BENCHMARKS
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)


def test_the_hour_long_colab_profile_runs_by_name_only():
    from benchmarks.__main__ import LONG_BENCHMARKS

    assert "colab_profile" in LONG_BENCHMARKS and "colab_profile" not in BENCHMARKS
    assert callable(importlib.import_module("benchmarks.colab_profile").main)


def test_padding_share_pads_each_batch_to_its_longest_row():
    from benchmarks.packing import padding_share

    assert padding_share([[3, 5], [4, 4]]) == pytest.approx(2 / 18)  # 2 pads in 10 + 8 slots
    assert padding_share([[4, 4, 4], [7]]) == 0.0
    assert padding_share([[1, 9]]) == pytest.approx(8 / 18)
    assert padding_share([]) == 0.0


def test_bin_waste_truncate_chunk_and_rate():
    from benchmarks.packing import bin_waste, chunk, tokens_per_second, truncate

    assert bin_waste([[3, 1], [4], [2]], 4) == pytest.approx(2 / 12)
    assert bin_waste([[2, 2], [4]], 4) == 0.0
    assert truncate([10, 300, 256], 256) == [10, 256, 256]
    assert chunk([5, 6, 7, 8, 9], [4, 3, 2, 1, 0], 2) == [[9, 8], [7, 6], [5]]
    assert tokens_per_second([100, 300], [1.0, 3.0]) == 100.0


def test_random_and_grouped_batches_keep_every_row():
    from benchmarks.packing import grouped_batches, padding_share, random_batches

    lengths = [10 + (37 * i) % 240 for i in range(64)]
    rand, grouped = random_batches(lengths, 4, seed=1), grouped_batches(lengths, 4, seed=1)
    for batches in (rand, grouped):
        assert [len(b) for b in batches] == [4] * 16
        assert sorted(n for b in batches for n in b) == sorted(lengths)
    assert random_batches(lengths, 4, seed=1) == rand  # seeded
    assert max(lengths) in grouped[0]  # transformers puts the longest row in the first batch
    assert padding_share(grouped) < padding_share(rand)


def test_packed_bins_use_trl_bfd():
    from benchmarks.packing import packed_bins

    assert sorted(packed_bins([3, 1, 2, 2, 4], 4)) == [[2, 2], [3, 1], [4]]
    assert packed_bins([6], 4) == [[4]]  # bfd truncates a row longer than the bin


def test_padding_figures_on_toy_lengths():
    from benchmarks.packing import padding_figures

    figures = padding_figures([4, 4, 2, 2, 9], max_length=4, batch=4)
    # truncated to [4, 4, 2, 2, 4]: one batch of 4 rows (pads to 4) and one of 1 row
    assert figures["rows"] == 5 and figures["tokens"] == 16
    assert figures["packed"] == 0.0 and figures["packed_rows"] == 4  # [4] [4] [4] [2, 2]
    assert figures["rows_per_packed_row"] == pytest.approx(5 / 4)
    assert 0.0 < figures["random"] <= 4 / 20  # at most the two 2-token rows' pads, 4 of 20 slots


def test_overhead_order_and_ratios():
    from benchmarks.trainer_overhead import abba_order, paired_ratios

    order = abba_order(4)
    assert [v for _, v in order] == ["lab", "plain", "plain", "lab", "lab", "plain", "plain", "lab"]
    assert sorted(r for r, _ in order) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert paired_ratios([3.0, 3.3], [3.0, 3.0]) == [1.0, 1.1]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


@pytest.mark.slow
def test_packed_rows_collator_isolates_examples_like_separate_rows(model_and_tokenizer):
    """The benchmark's ``packed rows`` mode must train what separate rows train: no example sees another."""
    import torch

    from benchmarks.packing import PackedRowsCollator

    model, tokenizer = model_and_tokenizer
    first = tokenizer("The capital of France is Paris, a city on the Seine.")["input_ids"]
    second = tokenizer("Water boils at one hundred degrees Celsius at sea level.")["input_ids"]
    batch = PackedRowsCollator(tokenizer.pad_token_id)(
        [{"input_ids": first + second, "labels": first + second, "seq_lengths": [len(first), len(second)]},
         {"input_ids": second, "labels": second, "seq_lengths": [len(second)]}])
    assert "attention_mask" not in batch
    assert batch["labels"][0, len(first)] == -100  # not predicted from the first example's last token
    with torch.no_grad():
        inputs = {k: batch[k] for k in ("input_ids", "position_ids", "attention_mask") if k in batch}
        packed = model(**inputs, use_cache=False).logits
        alone = model(input_ids=torch.tensor([second]), use_cache=False).logits
    n = len(second)
    assert (packed[0, len(first):len(first) + n] - alone[0]).abs().max() < 1e-3  # packed after another example
    assert (packed[1, :n] - alone[0]).abs().max() < 1e-3  # its own row, followed by padding


def test_colab_profile_keeps_each_sittings_time_at_every_checkpoint(tmp_path):
    """A sitting stopped after a checkpoint keeps the time of the steps it saved; the next sitting is a new entry."""
    from types import SimpleNamespace

    from benchmarks.colab_profile import sitting_clock

    clock = sitting_clock(tmp_path, 7.0)
    for step in (0, 1, 2):
        clock.on_step_begin(None, SimpleNamespace(global_step=step), None)
    clock.on_save(None, SimpleNamespace(global_step=3), None)
    resumed = sitting_clock(tmp_path, 6.5)  # the next sitting, resumed from checkpoint-3
    resumed.on_step_begin(None, SimpleNamespace(global_step=3), None)
    resumed.on_train_end(None, SimpleNamespace(global_step=5), None)
    segments = json.loads((tmp_path / "segments.json").read_text())
    assert [s["steps"] for s in segments] == [[0, 3], [3, 5]]
    assert [s["reference_step_s"] for s in segments] == [7.0, 6.5] and all(s["seconds"] >= 0 for s in segments)

"""Shared fixtures: the real offline SmolLM2, loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture(scope="session")
def cpu_recipe():
    """The CPU recipe in the small `ci` profile."""
    from labhelpers.model.hardware import detect_recipe

    return detect_recipe("ci")


@pytest.fixture(scope="session")
def model_and_tokenizer(cpu_recipe):
    """The real SmolLM2-135M-Instruct (hub online, converted GGUF offline) and its SFT-ready tokenizer."""
    from labhelpers.model.loading import load_model_and_tokenizer

    return load_model_and_tokenizer(recipe=cpu_recipe)


@pytest.fixture(scope="session")
def tokenizer(model_and_tokenizer):
    return model_and_tokenizer[1]


@pytest.fixture(scope="session")
def series_result() -> Callable[..., Path | None]:
    """``series_result("lora", "measured_full.json")``: that file of this session's ci series (the papermill pass, which
    runs first: see the root conftest), or None when the series did not run in this session (a test file run alone):
    the test then measures it itself."""
    run = Path(os.environ["LAB_RUN_DIR"])

    def find(*parts: str) -> Path | None:
        path = run.joinpath(*parts)
        return path if path.is_file() and (run / "metrics" / "papermill_timings.json").is_file() else None

    return find

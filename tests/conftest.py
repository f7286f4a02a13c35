"""Shared fixtures: the real offline SmolLM2, loaded once per test session."""

from __future__ import annotations

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

"""Fixtures: real third-party models from ../shared (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import shared_model


@pytest.fixture
def ad_model() -> Path:
    """MLPerf Tiny's ad01 autoencoder: a few us per inference, the cheapest real model."""
    return shared_model("ad01_int8.tflite")


@pytest.fixture
def kws_model() -> Path:
    return shared_model("kws_ref_model.tflite")

"""Fixtures for the loss tests: one random VGG-19 shared by the whole session (building it takes a while)."""

from __future__ import annotations

import pytest

from ostnet.losses.vgg import Vgg19Features


@pytest.fixture(scope="session")
def random_vgg() -> Vgg19Features:
    vgg = Vgg19Features()
    vgg.randomize()
    return vgg


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test in this folder runs with one thread (see ``one_thread`` in tests/conftest.py)."""

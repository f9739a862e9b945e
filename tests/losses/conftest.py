"""Fixtures for the loss tests: one random VGG-19 shared by the whole session (building it takes a while)."""

from __future__ import annotations

import pytest
import torch

from ostnet.losses.vgg import Vgg19Features


@pytest.fixture(scope="session")
def random_vgg() -> Vgg19Features:
    vgg = Vgg19Features()
    vgg.randomize()
    return vgg


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: these small convolutions gain little from two, and on a busy machine OpenMP
    threads waiting for each other cost several times the work itself."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Model compute on one intra-op thread, as `telugu-s2s serve` runs it (--torch-threads 1).

    With torch's default of one thread per core, each call's VAD and model steps start an
    OpenMP team whose threads spin-wait for each other; beside another CPU-heavy job that
    oversubscribes the cores and the listening worker fell 20 s behind real time here
    (barge-in and turn tests then failed). The in-process agents of these tests run as the
    server does instead."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

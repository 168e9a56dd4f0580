"""Benchmarks run one thread of torch: on a 2-core machine two threads contend with anything
else running and make small ops orders of magnitude slower, which would measure the machine."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

import os

import pytest
import torch

# Two xdist workers share 2 cores: one intra-op thread each avoids oversubscription.
torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: a killed-and-resumed run's subprocess ran with one, and the
    in-process parts must too for bit-equal float sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

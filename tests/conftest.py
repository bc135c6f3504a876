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

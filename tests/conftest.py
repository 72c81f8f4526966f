import os

import pytest
import torch

# Two cores here: keep each test process to one intra-op thread unless a test says otherwise.
torch.set_num_threads(int(os.environ.get("SPEECHTAO_TEST_THREADS", "1")))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)

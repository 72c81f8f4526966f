import os
import re

import pytest
import torch

# Two cores here: keep each test process to one intra-op thread unless a test says otherwise.
torch.set_num_threads(int(os.environ.get("SPEECHTAO_TEST_THREADS", "1")))

# A test that needs a Debian package or tool skips with a reason naming it ("... (apt-get install espeak-ng)"). With
# SPEECHTAO_REQUIRE_TOOLS=1 (set by `make test` and .ci/run) such a skip is a failure, so CI never passes because a
# tool went missing. A reason counts when it says "apt-get install" or "Debian" or names one of the packages the
# Makefile installs (DEBS) or a tool they provide.
REQUIRE_TOOLS = os.environ.get("SPEECHTAO_REQUIRE_TOOLS") == "1"
DEBIAN_REASON = re.compile(
    r"apt-get install|Debian|\b(espeak-ng|flite|festival|sox|ffmpeg|openssl|pocketsphinx-testdata|alsa-utils|"
    r"wordnet-base|bible-kjv|fortunes|python3-doc)\b"
)


def _fail_debian_skip(report) -> None:
    if REQUIRE_TOOLS and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if DEBIAN_REASON.search(reason):
            report.outcome = "failed"
            report.longrepr = f"SPEECHTAO_REQUIRE_TOOLS=1 and a Debian package is missing: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # skips in a test, a fixture or a skipif mark
    outcome = yield
    _fail_debian_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # pytest.skip(..., allow_module_level=True)
    outcome = yield
    _fail_debian_skip(outcome.get_result())


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)

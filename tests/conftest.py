import os
from pathlib import Path

import numpy as np
import pytest

from hetsched.ortsession import session

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir():
    """shared/ beside the checkout: the real darknet cfgs and the contract's worked example.
    CI always has it; a clone elsewhere skips the tests that need it."""
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing: CI must have shared/ beside the clone")
        pytest.skip(f"{SHARED} is not beside the repo")
    return SHARED


@pytest.fixture(scope="session")
def cfg_dir(shared_dir):
    return shared_dir / "darknet-cfg"


def run(model, feeds, threads=1):
    sess = session(model, threads, "disable")
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})))


def run_chain(submodels, feeds):
    """Run sub-models in order, each reading what earlier ones (or the user) produced."""
    env = dict(feeds)
    for sub in submodels:
        env.update(run(sub, env))
    return env


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def example_file(shared_dir):
    """The contract's section-5 example profile (version-1 terms), as its file."""
    return shared_dir / "design" / "example-profile.json"


@pytest.fixture
def example_v2_file(shared_dir):
    """The contract's section-6 example profile (version-2 terms), as its file."""
    return shared_dir / "design" / "example-profile-v2.json"


@pytest.fixture
def example(example_file):
    from hetsched import profile
    return profile.load(example_file)


@pytest.fixture
def example_v2(example_v2_file):
    from hetsched import profile
    return profile.load(example_v2_file)

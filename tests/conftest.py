import os
from pathlib import Path

import numpy as np
import pytest

from hetsched.ortsession import session

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CFG_DIR = SHARED / "darknet-cfg"


@pytest.fixture(scope="session")
def cfg_dir():
    if not CFG_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{CFG_DIR} is missing: CI must have shared/ beside the clone")
        pytest.skip(f"{CFG_DIR} is not here (the real darknet cfgs live in shared/ beside the repo)")
    return CFG_DIR


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED} is missing")
        pytest.skip(f"{SHARED} is not beside the repo")
    return SHARED


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

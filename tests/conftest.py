"""Shared fixtures. Real datasets live outside the repo: $ATOMFORGE_DATA, or ../shared/data
beside the checkout (never copied into the repo)."""
import os
from pathlib import Path

import pytest


def find_data_dir():
    env = os.environ.get("ATOMFORGE_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir():
    d = find_data_dir()
    if not d.is_dir():
        pytest.skip(f"dataset folder {d} not found (set ATOMFORGE_DATA)")
    return d


@pytest.fixture(scope="session")
def water_dir(data_dir):
    """The n2p2 RPBE-D3 water example (potential/ and input.data)."""
    d = data_dir / "n2p2_h2o_rpbe_d3"
    if not (d / "potential" / "input.nn").is_file():
        pytest.skip(f"n2p2 water example not found at {d}")
    return d

"""Shared fixtures. ``ray_local``: one private Ray instance (``ray.init(num_cpus=2)``) for the
tests of the distributed parts, started once per test process; tests that use it carry
``pytest.mark.xdist_group("ray")`` so that one xdist worker runs them all (``make test`` passes
``--dist loadgroup``) and the machine holds one Ray instance, not one per worker."""

import pytest


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray", reason="the distributed extra (pip install -e .[distributed])")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
    yield ray
    ray.shutdown()

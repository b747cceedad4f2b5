"""The client axis laid out over devices with JAX's own sharding (no home-made layer).

A round's stacked client arrays (leading axis = clients) are placed with
``NamedSharding(Mesh(devices, ("clients",)), PartitionSpec("clients"))``; the jitted,
``vmap`` ped client computation then runs partitioned over the devices, unchanged from one
CPU to many GPUs (and many hosts after ``jax.distributed.initialize``). The model is
replicated. On one CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8
devices to test with.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from qjaxrob.errors import ParameterError

__all__ = ["client_mesh", "client_sharding"]


def client_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``"clients"`` over ``devices`` (default: all devices)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("clients",))


def client_sharding(n_clients: int, devices=None) -> NamedSharding:
    """The sharding of a stacked client axis of length ``n_clients`` over ``devices``;
    ``n_clients`` must be a multiple of the number of devices."""
    mesh = client_mesh(devices)
    n_dev = mesh.devices.size
    if n_clients % n_dev:
        raise ParameterError(
            f"sharding {n_clients} clients per round over {n_dev} devices needs a multiple "
            f"of {n_dev} (set clients_per_round accordingly, or shard=False)"
        )
    return NamedSharding(mesh, PartitionSpec("clients"))

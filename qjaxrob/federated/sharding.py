"""The client axis laid out over devices (:mod:`qjaxrob.devices`, JAX's own sharding).

A round's stacked client arrays (leading axis = clients) are placed with
``NamedSharding(Mesh(devices, ("clients",)), PartitionSpec("clients"))``; the jitted,
``vmap`` ped client computation then runs partitioned over the devices, unchanged from one
CPU to many GPUs (and many hosts after ``jax.distributed.initialize``). The model is
replicated. A round whose client count is not a multiple of the device count is padded
with copies of its last client, whose updates are dropped (``qjaxrob.devices.over``).
The devices: those given, else those lent by ``qjaxrob.devices.use`` (a study runner's
``--layout batch``), else all devices. On one CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8 devices to test with.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding

from qjaxrob import devices as _devices

__all__ = ["client_devices", "client_mesh", "client_sharding"]


def client_devices(devices=None) -> tuple:
    """``devices``, else the devices in use (``qjaxrob.devices.in_use``), else all."""
    if devices is not None:
        return _devices.check_devices(devices)
    return _devices.in_use() or tuple(jax.devices())


def client_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``"clients"`` over :func:`client_devices`."""
    return _devices.mesh(client_devices(devices), "clients")


def client_sharding(devices=None) -> NamedSharding:
    """The sharding of a stacked client axis over :func:`client_devices` (pad the axis
    to a multiple of their number, as ``qjaxrob.devices.over`` does)."""
    return _devices.sharding(client_mesh(devices))

"""Quantum federated learning: data splits, clients, rounds and robust aggregation.

Aggregators map ``updates`` ``(n_clients, dim)`` to ``(dim,)`` (flatten model pytrees with
:func:`flatten`). Byzantine behaviour and differential privacy are not implemented here:
they are passed to :class:`FedConfig` as functions (``qjaxrob.attacks.byzantine``,
``qjaxrob.defenses.privacy``), so this package never imports ``attacks`` or ``defenses``.
The Flower adapter is ``qjaxrob.federated.flower`` (needs the ``flower`` extra).
"""

from qjaxrob.federated.aggregators import (
    AGGREGATORS,
    aggregator,
    check_updates,
    fedavg,
    fltrust,
    geometric_median,
    krum,
    krum_scores,
    median,
    multi_krum,
    norm_clip,
    trimmed_mean,
    weiszfeld,
)
from qjaxrob.federated.clients import client_update, flatten, local_updates, unflatten
from qjaxrob.federated.config import MODES, ClientSpec, FedConfig
from qjaxrob.federated.rounds import (
    RoundInfo,
    RoundPlan,
    ServerState,
    evaluate_round,
    federated_round,
    init_state,
    plan_round,
    poison,
    run,
    server_update,
)
from qjaxrob.federated.sharding import client_mesh, client_sharding
from qjaxrob.federated.splits import (
    ClientData,
    dirichlet_split,
    iid_split,
    quantity_skew_split,
    stack_clients,
)

__all__ = [
    "AGGREGATORS",
    "MODES",
    "ClientData",
    "ClientSpec",
    "FedConfig",
    "RoundInfo",
    "RoundPlan",
    "ServerState",
    "aggregator",
    "check_updates",
    "client_mesh",
    "client_sharding",
    "client_update",
    "dirichlet_split",
    "evaluate_round",
    "fedavg",
    "federated_round",
    "flatten",
    "fltrust",
    "geometric_median",
    "iid_split",
    "init_state",
    "krum",
    "krum_scores",
    "local_updates",
    "median",
    "multi_krum",
    "norm_clip",
    "plan_round",
    "poison",
    "quantity_skew_split",
    "run",
    "server_update",
    "stack_clients",
    "trimmed_mean",
    "unflatten",
    "weiszfeld",
]

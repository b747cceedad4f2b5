"""Quantum federated learning: data splits, clients, rounds and robust aggregation.

Aggregators map ``updates`` ``(n_clients, dim)`` to ``(dim,)`` (flatten model pytrees with
:func:`flatten`). Byzantine behaviour and differential privacy are not implemented here:
they are passed to :class:`FedConfig` as functions (``qjaxrob.attacks.byzantine``,
``qjaxrob.defenses.privacy``), so this package never imports ``attacks`` or ``defenses``.
The Flower adapter is ``qjaxrob.federated.flower`` (needs the ``flower`` extra).

Example::

    from qjaxrob import federated as fed
    from qjaxrob.attacks import byzantine
    from qjaxrob.defenses import privacy

    parts = fed.dirichlet_split(jax.random.key(0), y_train, 20, alpha=0.5)
    data = fed.stack_clients(x_train, y_train, parts)
    model = qjr.qml.make_vqc(jax.random.key(1), n_features=4, n_classes=2)
    config = fed.FedConfig(
        clients_per_round=10, rounds=50, local_steps=5, batch_size=16,
        client_optimizer=optax.adam(0.05),
        aggregator=fed.aggregator("krum", f=2),
        malicious=byzantine.malicious_clients(jax.random.key(2), 20, 4),
        poison_updates=byzantine.ALIE(),
    )
    state, records = fed.run(config, "runs/krum_alie", model=model, data=data,
                             test=(x_test, y_test))   # resumable; records = JSONL lines
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

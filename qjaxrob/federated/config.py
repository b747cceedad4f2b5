"""The configuration of a federated run: one frozen, hashable dataclass.

It is a static argument of the jitted client and server steps, so two runs with equal
configurations (same optimizer / attack / DP objects) share their compiled code.

Behaviour that ``federated`` does not implement itself is passed in as functions (so
``federated`` never imports ``attacks`` or ``defenses``):

* ``poison_data(x, y, count, key) -> (x, y)``: what a malicious client does to its own
  padded data (``x`` ``(max_n, n_features)``, ``y`` ``(max_n,)``, ``count`` valid rows)
  before local training (label flipping, backdoor triggers).
* ``poison_updates(updates, malicious, key) -> updates``: what the malicious rows of the
  round's update matrix ``(m, dim)`` become (``malicious`` ``(m,)`` bool); attacks may
  read the benign rows (omniscient, colluding adversary).
* ``local_privacy``: example-level DP-SGD, an ``(init, update)`` pair:
  ``init(params, key) -> state``, ``update(per_example_grads, state) -> (grad, state)``
  (leading axis of ``per_example_grads`` = examples of the minibatch).
* ``server_privacy``: client-level DP-FedAvg, ``init(params, key) -> state``,
  ``update(updates, state) -> (aggregate, state)`` with ``updates`` ``(m, dim)``; it
  replaces ``aggregator``.
* ``accountant(rounds_done) -> epsilon``: the privacy budget spent after that many rounds.
* ``backdoor_trigger(x) -> x`` (one example) and ``backdoor_target``: evaluation of a
  backdoor (fraction of triggered test examples of other classes predicted as the target).
* ``attack_target(y) -> y'``: a targeted attack's goal label per test example (attack
  success = fraction predicted ``y'``); without it, with malicious clients configured,
  attack success is the test error rate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import optax

from qjaxrob.checks import check_int, check_positive_int
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.federated.aggregators import AGGREGATORS
from qjaxrob.federated.aggregators import aggregator as _make_aggregator

__all__ = ["MODES", "ClientSpec", "FedConfig"]

MODES = ("fedavg", "fedsgd")

DEFAULT_CLIENT_OPTIMIZER = optax.sgd(0.1)
DEFAULT_SERVER_OPTIMIZER = optax.sgd(1.0)
DEFAULT_AGGREGATOR = _make_aggregator("fedavg")


def _check_aggregator(rule):
    """``rule`` if callable; a name of a rule without hyper-parameters (``"fedavg"``,
    ``"median"``, ...) becomes that rule; anything else raises naming the value."""
    if isinstance(rule, str):
        if rule not in AGGREGATORS:
            raise ParameterError(f"unknown aggregator {rule!r}; choose from {AGGREGATORS} or "
                                 "pass a callable rule(updates, weights)")
        try:
            return _make_aggregator(rule)
        except ParameterError as exc:
            raise ParameterError(
                f"aggregator {rule!r} needs hyper-parameters ({exc}): pass "
                f"qjr.federated.aggregator({rule!r}, ...) with them, e.g. "
                "aggregator('krum', f=2)"
            ) from None
    if not callable(rule):
        raise QjrTypeError(f"aggregator must be a callable rule(updates, weights) or a rule "
                           f"name, got {rule!r} ({type(rule).__name__})")
    return rule


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    """The part of :class:`FedConfig` that client computation depends on (the static
    argument of the jitted client step, so runs that differ only on the server side,
    e.g. in the aggregator, share the compiled client code)."""

    mode: str
    local_steps: int
    local_epochs: int | None
    batch_size: int
    client_optimizer: optax.GradientTransformation
    poison_data: Callable | None
    local_privacy: object


@dataclasses.dataclass(frozen=True)
class FedConfig:
    """Hyper-parameters of a federated run (all fields hashable).

    Args:
        clients_per_round: ``m`` clients sampled uniformly without replacement each round.
        rounds: total rounds (a resumed run continues up to this number).
        mode: ``"fedavg"`` (clients train locally and send ``w_global - w_local``) or
            ``"fedsgd"`` (clients send the gradient of their mean loss on all their data).
            The server treats the aggregate as a gradient for ``server_optimizer``
            (FedOpt; ``optax.sgd(1.0)`` + ``"fedavg"`` is plain FedAvg).
        local_steps: FedAvg minibatch steps per round (batch indices drawn uniformly with
            replacement from the client's examples), used when ``local_epochs`` is None.
        local_epochs: FedAvg epochs per round (a random permutation of the client's
            examples in batches of ``batch_size``; the last batch may be partial; clients
            with fewer batches skip the extra steps).
        batch_size: examples per local step.
        client_optimizer / server_optimizer: ``optax`` transformations (defaults
            ``sgd(0.1)`` / ``sgd(1.0)``).
        aggregator: ``rule(updates, weights) -> (dim,)`` (default FedAvg weighted by
            client example counts; see :func:`~qjaxrob.federated.aggregator`), or the
            name of a rule without hyper-parameters (``"fedavg"``, ``"median"``,
            ``"geometric_median"``, ``"fltrust"``); checked at construction.
        malicious: ids of the malicious clients.
        seed: base of every PRNG key of the run.
        shard: lay the client axis of each round out over the devices lent by
            ``qjaxrob.devices.use`` (else all local devices), padded to a multiple of
            their number (the padding's updates are dropped).
        (Functions: see the module docstring.)
    """

    clients_per_round: int
    rounds: int
    mode: str = "fedavg"
    local_steps: int = 1
    local_epochs: int | None = None
    batch_size: int = 16
    client_optimizer: optax.GradientTransformation = DEFAULT_CLIENT_OPTIMIZER
    server_optimizer: optax.GradientTransformation = DEFAULT_SERVER_OPTIMIZER
    aggregator: Callable = DEFAULT_AGGREGATOR
    malicious: tuple = ()
    poison_data: Callable | None = None
    poison_updates: Callable | None = None
    local_privacy: object = None
    server_privacy: object = None
    accountant: Callable | None = None
    backdoor_trigger: Callable | None = None
    backdoor_target: int | None = None
    attack_target: Callable | None = None
    seed: int = 0
    shard: bool = False

    def __post_init__(self):
        object.__setattr__(self, "aggregator", _check_aggregator(self.aggregator))
        check_positive_int(self.clients_per_round, "clients_per_round")
        check_int(self.rounds, "rounds", minimum=0)
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}, got {self.mode!r}")
        check_positive_int(self.local_steps, "local_steps")
        if self.local_epochs is not None:
            check_positive_int(self.local_epochs, "local_epochs")
        check_positive_int(self.batch_size, "batch_size")
        check_int(self.seed, "seed")
        mal = tuple(check_int(i, "malicious client id", minimum=0) for i in self.malicious)
        if len(set(mal)) != len(mal):
            raise ParameterError(f"malicious client ids repeat: {self.malicious}")
        object.__setattr__(self, "malicious", tuple(sorted(mal)))
        if (self.backdoor_trigger is None) != (self.backdoor_target is None):
            raise ParameterError("backdoor_trigger and backdoor_target must be given together")
        if self.local_privacy is not None and (self.mode != "fedavg" or self.local_epochs):
            raise ParameterError(
                "local_privacy (DP-SGD) needs mode='fedavg' with local_steps (uniformly "
                f"sampled minibatches), got mode={self.mode!r}, local_epochs={self.local_epochs}"
            )

    @property
    def client_spec(self) -> ClientSpec:
        return ClientSpec(self.mode, self.local_steps, self.local_epochs, self.batch_size,
                          self.client_optimizer, self.poison_data, self.local_privacy)

    def check_clients(self, n_clients: int) -> None:
        """Raises if this configuration cannot run on ``n_clients`` clients."""
        n_clients = check_positive_int(n_clients, "n_clients")
        if self.clients_per_round > n_clients:
            raise ParameterError(
                f"clients_per_round = {self.clients_per_round} exceeds n_clients = {n_clients}"
            )
        bad = [i for i in self.malicious if i >= n_clients]
        if bad:
            raise ParameterError(f"malicious client id {bad[0]} >= n_clients = {n_clients}")

    def describe(self) -> str:
        """A deterministic JSON description (without ``rounds``) used to refuse resuming a
        run with a different configuration. Numbers, ids, attacks and aggregators are
        described by value; optax optimizers and plain functions only by their type or
        qualified name (a changed learning rate is not detected)."""
        def name(v):
            if v is None or isinstance(v, (bool, int, float, str)):
                return v
            if isinstance(v, tuple) and all(isinstance(a, int) for a in v):
                return list(v)
            return repr(v) if hasattr(v, "__dataclass_fields__") or hasattr(v, "kwargs") \
                else getattr(v, "__qualname__", type(v).__qualname__)

        d = {f.name: name(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name != "rounds"}
        return json.dumps(d, sort_keys=True)

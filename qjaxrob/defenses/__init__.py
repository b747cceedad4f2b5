"""Defenses: quantum differential privacy bounds, certified robustness, smoothing, DP-SGD.

Submodules: ``qdp`` ((epsilon, delta) of noisy circuits: Du et al.'s closed form and Guan
et al.'s tight bound from Heisenberg effects), ``certify`` (DP, trace-distance and
hypothesis-testing certificates), ``smoothing`` (randomized smoothing over encoding noise),
``tradeoff`` (accuracy vs epsilon vs certified radius over noise levels), ``empirical``
(attacks run inside certified radii: the certified-vs-empirical gap), ``integrity``
(integrity checks of distributed QML as hypothesis tests).
"""

from qjaxrob.defenses import certify, empirical, qdp, smoothing, tradeoff
from qjaxrob.defenses import privacy
from qjaxrob.defenses import adversarial
from qjaxrob.defenses import integrity
from qjaxrob.defenses.certify import (
    channel_trace_radius,
    dp_certified,
    dp_radius,
    hypothesis_testing_radius,
    top_two,
    trace_distance_radius,
)
from qjaxrob.defenses.qdp import (
    add_noise,
    channel_effects,
    circuit_dp,
    delta_from_effects,
    depolarizing_epsilon,
    epsilon_from_effects,
    epsilon_from_kappa,
    kappa,
    noise_dp,
)
from qjaxrob.defenses.smoothing import SmoothingCertificate, clopper_pearson_lower
from qjaxrob.defenses.tradeoff import qdp_utility

"""Integrity checks for distributed quantum machine learning: hypothesis tests with a
stated false-positive level, a measured power and a stated cost.

Submodules: ``federated`` (quantum federated learning: physically bounded updates,
shot-noise consistency of measurement records, audit rounds).
"""

# ---- quantum federated learning ----
from qjaxrob.defenses.integrity import federated
from qjaxrob.defenses.integrity.federated import (
    AuditCheck,
    BoundCheck,
    ShotCheck,
    audit,
    audit_schedule,
    bounded_updates,
    catch_probability,
    check_alpha,
    shift_bound,
    shift_probabilities,
    shot_consistency,
    shot_record,
    update_bound,
)

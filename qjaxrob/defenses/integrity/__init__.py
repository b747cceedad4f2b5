"""Integrity checks for distributed QML: hypothesis tests with a stated level ``alpha``, a
measured power and a stated cost, that use what an adversary does not control (physics,
redundancy, secrets).

Submodules: ``cuts`` (a wire cut's untrusted downstream executor: calibrated pair
consistency, redundant execution, secret Clifford relabelling, physicality of the cut map),
``federated`` (quantum federated learning: physically bounded updates, shot-noise
consistency of measurement records, audit rounds), ``levels`` (the shared ``alpha`` check).
"""

from qjaxrob.defenses.integrity.levels import check_alpha

# ---- cuts ---------------------------------------------------------------------------------
from qjaxrob.defenses.integrity import cuts
from qjaxrob.defenses.integrity.cuts import (
    CheckResult,
    WireCutData,
    consistency_violations,
    cut_choi,
    exact_atol,
    pair_consistency,
    pair_test,
    physicality,
    prepared_bloch,
    redundancy,
    relabelled_coeffs,
    relabelled_values,
    relabelling,
    sample_counts,
    symmetric_critical,
    wire_cut_data,
)

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
    shift_bound,
    shift_probabilities,
    shot_consistency,
    shot_record,
    update_bound,
)

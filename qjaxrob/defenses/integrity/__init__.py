"""Integrity checks for distributed QML: hypothesis tests with a stated level ``alpha``, a
measured power and a stated cost, that use what an adversary does not control (physics,
redundancy, secrets).

Submodules: ``cuts`` (a wire cut's untrusted downstream executor: calibrated pair
consistency, redundant execution, secret Clifford relabelling, physicality of the cut map).
"""

# ---- cuts ---------------------------------------------------------------------------------
from qjaxrob.defenses.integrity import cuts
from qjaxrob.defenses.integrity.cuts import (
    CheckResult,
    WireCutData,
    check_alpha,
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

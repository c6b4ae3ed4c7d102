"""Adapter circuits as plain data: gates, ops, circuits and the builders of each family.

Imports numpy only. Compile a circuit with :mod:`backends`.
"""

from circuits.builders import (
    BUILDERS,
    build,
    fbs_butterfly,
    rbs_brick,
    rbs_butterfly,
    rbs_pyramid,
    two_design,
)
from circuits.circuit import Circuit, Op, moments
from circuits.gates import (
    GATES,
    Gate,
    Native,
    Step,
    get_gate,
    reference_matrix,
    rotation_parts,
)
from circuits.subspace import subspace_dim, weight_indices, weight_positions

__all__ = [
    "BUILDERS",
    "GATES",
    "Circuit",
    "Gate",
    "Native",
    "Op",
    "Step",
    "build",
    "fbs_butterfly",
    "get_gate",
    "moments",
    "rbs_brick",
    "rbs_butterfly",
    "rbs_pyramid",
    "reference_matrix",
    "rotation_parts",
    "subspace_dim",
    "two_design",
    "weight_indices",
    "weight_positions",
]

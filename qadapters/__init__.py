"""qadapters: parameter-efficient fine-tuning adapters that are parameterized quantum circuits.

The names users reach for first; everything else lives in the submodules named in the README.
"""

from qadapters.circuit_layer import CircuitLayer
from qadapters.config import QAdapterConfig
from qadapters.families import FAMILIES, make_adapter, trainable_count
from qadapters.families.optim import default_lr, param_groups
from qadapters.model import QAdapterModel, get_qadapter_model

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "CircuitLayer",
    "QAdapterConfig",
    "QAdapterModel",
    "default_lr",
    "get_qadapter_model",
    "make_adapter",
    "param_groups",
    "trainable_count",
]

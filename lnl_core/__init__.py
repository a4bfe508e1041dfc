"""lnl_core: learning with noisy labels, five recent methods on one tested substrate.

Modules: ``data`` (data sets, subsets, resident data), ``augment`` (batched augmentation),
``noise`` (label-noise generators), ``models``, ``losses``, ``cleaners`` (sample selection),
``engine`` (what every trainer shares), ``trainers`` (the ``METHODS`` registry),
``experiment`` (one run end to end), ``cli`` (the ``lnl`` command).
"""

__version__ = "0.1.0"

from .errors import DataNotFoundError, LNLError  # noqa: E402
from .experiment import build_config, run_config, run_experiment  # noqa: E402
from .trainers import METHODS  # noqa: E402

__all__ = [
    "METHODS",
    "DataNotFoundError",
    "LNLError",
    "build_config",
    "run_config",
    "run_experiment",
    "__version__",
]

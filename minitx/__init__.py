"""minitx: a small, verified transformer library for learning and experimenting, in PyTorch.

- `minitx.functional` (``import minitx.functional as mf``): stateless layers over parameter dicts.
- `minitx.nn`: thin module twins of the functional models.
- `minitx.data`: the course's datasets, padding and batching.
"""

from .config import ClassifierConfig, LMConfig

__version__ = "0.1.0"
__all__ = ["ClassifierConfig", "LMConfig", "__version__"]

"""ghostwrite.training: fit a personal model on the user's own writing (``ghostwrite train``).

Importing this package imports ``ghostwrite.model`` first, which loads OpenBLAS before any
``mlx.core`` import in the training modules (MLX's bundled BLAS is ~35x slower on Linux).
"""

from ghostwrite.model import backend  # noqa: F401

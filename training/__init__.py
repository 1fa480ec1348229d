"""ghostwrite.training: fit a personal model on the user's own writing (``ghostwrite train``).

``train`` (with the modules it is built from) and ``evaluate`` import ``mlx.core``: call
``ghostwrite.model.backend.setup_mlx()`` before importing them (the CLI does), or MLX runs on
its slow reference BLAS.
"""

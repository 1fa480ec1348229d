"""The error a training run stops with when the user can fix the cause."""


class TrainingError(Exception):
    """A run that cannot go on, with a one-line reason for the user."""

"""Training, evaluation and inference loops that take a model: the floor above ``model`` and ``data``."""

"""Loops that run a model over data: training, evaluation and streaming. The floor above ``model`` and ``data``."""

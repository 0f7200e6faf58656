"""Loops that run a model over data: streaming (and, beside it, training, evaluation, batched prediction)."""

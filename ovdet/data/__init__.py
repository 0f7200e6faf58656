"""Data: datasets, augmentation, the training set, and the synthetic open-vocabulary world.

Sits beside ``ovdet.model`` and imports neither it nor the engine; only the ground floor (errors, fileio, images,
results).
"""

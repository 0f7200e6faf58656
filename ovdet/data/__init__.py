"""Datasets and augmentation for training and evaluation. Imports only ovdet's ground floor."""

"""Facesets on disk, datasets and augmentation for training."""

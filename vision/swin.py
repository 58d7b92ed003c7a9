"""Placeholder until the swin family lands; the registry imports MODELS."""
MODELS = {}

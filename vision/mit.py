"""Placeholder until the mit family lands; the registry imports MODELS."""
MODELS = {}

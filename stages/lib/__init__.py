"""Shared helpers for the stages: errors, atomic output, typed config, model I/O."""

"""Backstop Python tooling: units, reference model, order signing, keeper and stress runner."""

__version__ = "0.1.0"

"""``ape run risk run CONFIG [...]``: the risk lab (docs/risk-lab.md), the same command as
``backstop risk`` (it needs no chain; Ape's network option is not used)."""

from backstop.risk.cli import risk as cli

__all__ = ["cli"]

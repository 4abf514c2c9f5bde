"""The rule declarations of the fuzz machine: one spec per action, two drivers.

:func:`action` records an action's integer parameter ranges (:class:`R`) or choices (:class:`C`)
and its weight once; both the hypothesis strategies of the CI profile (the machine's single
``step`` rule) and the seeded draws of the deep driver (``tests/fuzz/driver.py``) are derived from
that declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class R:
    """An integer parameter drawn uniformly from ``[lo, hi]``."""

    lo: int
    hi: int

    def strategy(self) -> st.SearchStrategy[int]:
        # Small ranges (actors, markets, modes, percentages) are sampled uniformly: hypothesis's
        # integer strategy favours small values and edges, which would make actor 0 do most things.
        if self.hi - self.lo < 256:
            return st.sampled_from(range(self.lo, self.hi + 1))
        return st.integers(self.lo, self.hi)

    def draw(self, rng: Any) -> int:
        return rng.randint(self.lo, self.hi)


@dataclass(frozen=True)
class C:
    """A parameter drawn from a fixed tuple of choices."""

    options: tuple[Any, ...]

    def strategy(self) -> st.SearchStrategy[Any]:
        return st.sampled_from(self.options)

    def draw(self, rng: Any) -> Any:
        return self.options[rng.randrange(len(self.options))]


ACTION_ATTR = "_fuzz_action"


def action(weight: int = 1, **params: R | C) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declares a protocol action with its parameter ranges and its weight. Both drivers draw from
    this one declaration: hypothesis through the machine's single ``step`` rule, the deep driver
    with a seeded ``random.Random``."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        setattr(fn, ACTION_ATTR, (weight, params))
        return fn

    return decorate


def actions_of(cls: type) -> list[tuple[str, int, dict[str, R | C]]]:
    """``(name, weight, params)`` of every declared action, in definition order from the base class
    up (the order the drivers sample from: it fixes every pinned run). An action redeclared in a
    subclass keeps its place and takes the subclass's declaration."""
    found: dict[str, tuple[int, dict[str, R | C]]] = {}
    for klass in reversed(cls.__mro__):
        for name, fn in vars(klass).items():
            spec = getattr(fn, ACTION_ATTR, None)
            if spec is not None:
                found[name] = spec
    return [(name, weight, params) for name, (weight, params) in found.items()]


def weighted_action_names(cls: type) -> list[str]:
    """Every action name repeated by its weight (what the ``step`` rule samples from)."""
    return [name for name, weight, _ in actions_of(cls) for _ in range(weight)]

"""The reference model with a faster transaction wrapper, for the fuzz drivers.

``backstop.model`` makes every mutating method atomic with ``copy.deepcopy(self.__dict__)`` before
the call (restored if it raises). That is correct and, at 0.3-5 ms a call (it grows with the
``filled`` order map), the single largest cost of a fuzz step. :class:`FastModel` keeps exactly the
same semantics — the state a method started from is restored if it raises anything — but takes the
copy with :func:`clone`, a structure-aware copy of the model's plain data (ints, strings, bytes,
tuples of those, dicts, lists, sets and plain / dataclass objects), 10-50x faster than
``deepcopy``. Every method is the model's own code (``__wrapped__`` of the decorated one); nothing
else changes. ``tests/fuzz/test_fast_model.py`` checks it against :class:`Model` op for op.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
from collections.abc import Callable
from typing import Any

from backstop.model import Model
from backstop.orders import ORDER_TYPEHASH

_IMMUTABLE = frozenset({int, str, bytes, bool, float, type(None), frozenset})


def _immutable_tuple(value: tuple) -> bool:
    return all(type(v) in _IMMUTABLE or (type(v) is tuple and _immutable_tuple(v)) for v in value)


_FROZEN: dict[type, bool] = {}


def _is_frozen(cls: type) -> bool:
    frozen = _FROZEN.get(cls)
    if frozen is None:
        params = getattr(cls, "__dataclass_params__", None)
        frozen = _FROZEN[cls] = bool(dataclasses.is_dataclass(cls) and params is not None and params.frozen)
    return frozen


def clone(value: Any) -> Any:
    """An independent copy of ``value`` (the model's state), as ``copy.deepcopy`` would make it
    for plain data; anything it does not recognize falls back to ``deepcopy``. Containers whose
    elements are all immutable are copied shallowly in one C-level call."""
    t = type(value)
    if t in _IMMUTABLE:
        return value
    if t is dict:
        if _IMMUTABLE.issuperset(map(type, value.values())):
            return value.copy()
        return {k: clone(v) for k, v in value.items()}
    if t is list:
        if _IMMUTABLE.issuperset(map(type, value)):
            return value.copy()
        return [clone(v) for v in value]
    if t is set:
        return value.copy()  # elements are hashable: immutable here (addresses, hashes, tuples of them)
    if t is tuple:
        return value if _immutable_tuple(value) else tuple(clone(v) for v in value)
    if hasattr(value, "__dict__") and not hasattr(value, "__slots__"):
        if _is_frozen(t):
            return value
        fields = value.__dict__
        new = object.__new__(t)
        if _IMMUTABLE.issuperset(map(type, fields.values())):
            new.__dict__.update(fields)
        else:
            new.__dict__.update({k: clone(v) for k, v in fields.items()})
        return new
    return copy.deepcopy(value)


def _fast_atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Model, *args: Any, **kwargs: Any) -> Any:
        saved = clone(self.__dict__)
        try:
            return method(self, *args, **kwargs)
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    return wrapper


class FastModel(Model):
    """:class:`Model` whose atomic methods snapshot with :func:`clone` instead of ``deepcopy``."""


for _name, _attr in list(vars(Model).items()):
    _inner = getattr(_attr, "__wrapped__", None)
    if isinstance(_attr, types.FunctionType) and _inner is not None:  # the @_atomic methods
        setattr(FastModel, _name, _fast_atomic(_inner))


def fast_copy(model: Model) -> FastModel:
    """A :class:`FastModel` with an independent copy of ``model``'s state."""
    out = object.__new__(FastModel)
    out.__dict__.update(clone(model.__dict__))
    return out


# --- the order hash ----------------------------------------------------------------------------------


def fast_struct_hash(order: Any) -> bytes:
    """``backstop.orders.order_struct_hash`` without eth-abi: the seven fields are static ABI words,
    so the encoding is their concatenation (same bytes, checked by ``test_fast_model.py``)."""
    from tests.fuzz.world import Calls, keccak

    return keccak(ORDER_TYPEHASH + Calls.order_words(order))


def install_fast_struct_hash() -> None:
    """Makes ``backstop.model`` hash orders with :func:`fast_struct_hash` (memoized), for the deep
    driver's processes only: the model calls the hash for every order check and fill, and
    eth-abi's encoder is its single slowest piece. The output is byte-identical."""
    import backstop.model

    backstop.model.order_struct_hash = functools.lru_cache(maxsize=4096)(fast_struct_hash)

"""FastModel is the reference model with a cheaper transaction wrapper: same results, same rollback."""

from __future__ import annotations

import copy
import random

import pytest

from backstop.evm import PyRevmBackend
from backstop.model import Model, ModelRevert
from backstop.orders import Order
from backstop.units import WAD
from tests.fuzz.driver import Drawer
from tests.fuzz.fast_model import FastModel, clone
from tests.fuzz.machine import replay
from tests.fuzz.world import World


@pytest.fixture(scope="module")
def busy_model():
    """The model after a random run with trades, liquidations and fund activity."""
    world = World(PyRevmBackend())
    drawer, rng = Drawer(), random.Random(11)
    machine = replay(world, [drawer.draw(rng) for _ in range(250)], full_every=16)
    return machine.model


def as_plain_model(fast: FastModel) -> Model:
    plain = object.__new__(Model)
    plain.__dict__.update(copy.deepcopy(fast.__dict__))
    return plain


def test_clone_equals_deepcopy_and_shares_nothing_mutable(busy_model):
    state = busy_model.__dict__
    copied = clone(state)
    assert copied == copy.deepcopy(state)
    for key, value in state.items():
        if isinstance(value, dict | list | set):
            assert copied[key] is not value, key
    for key, account in state["accounts"].items():
        assert copied["accounts"][key] is not account
        for m, position in account.positions.items():
            assert copied["accounts"][key].positions[m] is not position


def random_op(rng: random.Random, model: Model, accounts: list[str], i: int) -> tuple[str, tuple]:
    a, b = rng.sample(accounts, 2)
    m = rng.randrange(len(model.markets))
    q = rng.randrange(1, 50 * WAD)
    price = model.markets[m].price * rng.randint(90, 110) // 100
    amount = rng.randrange(1, 10**10)
    op = rng.choice(["deposit", "withdraw", "match", "liquidate", "settle", "set_price", "stake"])
    args = {
        "deposit": (a, amount),
        "withdraw": (a, amount),
        "match": (
            Order(a, m, True, q, price, 10**6 + i, 2**40),
            True,
            Order(b, m, False, q, price, 10**6 + i, 2**40),
            True,
            q,
        ),
        "liquidate": (a, b),
        "settle": (a,),
        "set_price": (m, price),
        "stake": (a, amount),
    }[op]
    return op, args


def test_fast_model_matches_model_op_for_op_including_rollbacks(busy_model):
    fast = FastModel.__new__(FastModel)
    fast.__dict__.update(clone(busy_model.__dict__))
    plain = as_plain_model(fast)
    rng = random.Random(5)
    accounts = list(fast.accounts)
    rollbacks = 0
    for i in range(400):
        op, args = random_op(rng, fast, accounts, i)
        outcomes = []
        for model in (fast, plain):
            try:
                outcomes.append(("ok", getattr(model, op)(*args)))
            except ModelRevert as err:
                outcomes.append(("revert", err.name))
        assert outcomes[0] == outcomes[1], (i, op, outcomes)
        rollbacks += outcomes[0][0] == "revert"
        assert fast.__dict__ == plain.__dict__, (i, op)
    assert rollbacks > 20

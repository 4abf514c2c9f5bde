"""The model's transactions: ``_atomic`` snapshots with ``backstop.model.copy_state`` (and
``clone`` for anything it does not know) instead of ``copy.deepcopy``; a rollback must restore
exactly the state a deepcopy would have restored."""

from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from backstop.chain.evm import PyRevmBackend
from backstop.model import (
    AccountState,
    Market,
    MarketParams,
    Model,
    ModelRevert,
    Position,
    RedeemRequest,
    clone,
    copy_state,
)
from backstop.orders import FAR_EXPIRY, Order
from backstop.units import WAD
from tests.fuzz.driver import Drawer
from tests.fuzz.machine import replay
from tests.fuzz.world import World


@pytest.fixture(scope="module")
def busy_model():
    """The model after a random run with trades, liquidations and fund activity."""
    world = World(PyRevmBackend())
    drawer, rng = Drawer(), random.Random(11)
    machine = replay(world, [drawer.draw(rng) for _ in range(250)], full_every=16)
    model = machine.model
    assert model.accounts and model.filled
    return model


@pytest.mark.parametrize("copier", [clone, copy_state])
def test_copy_equals_deepcopy_and_shares_nothing_mutable(busy_model, copier):
    state = busy_model.__dict__
    copied = copier(state)
    assert copied == copy.deepcopy(state)
    for key, value in state.items():
        if isinstance(value, dict | list | set):
            assert copied[key] is not value, key
    for key, account in state["accounts"].items():
        assert copied["accounts"][key] is not account
        for m, position in account.positions.items():
            assert copied["accounts"][key].positions[m] is not position
    for market, original in zip(copied["markets"], state["markets"], strict=True):
        assert market is not original and market.params is not original.params
        assert market.loss_index is not original.loss_index
        assert market.open_interest is not original.open_interest
    for key, request in state["redeem_requests"].items():
        assert copied["redeem_requests"][key] is not request


def test_copy_state_knows_every_field_it_writes_out():
    """``copy_state`` copies these classes field by field as flat or with the listed containers:
    a new mutable field must be added to its copier (and here)."""
    shapes = {
        Position: ["size", "open_notional", "snapshot"],
        MarketParams: [f.name for f in dataclasses.fields(MarketParams)],
        RedeemRequest: ["shares", "assets", "requested_at"],
        Market: ["params", "price", "paused", "loss_index", "open_interest"],
        AccountState: ["margin", "positions", "min_nonce"],
    }
    for cls, names in shapes.items():
        fields = dataclasses.fields(cls)
        assert [f.name for f in fields] == names, cls
        containers = {"params", "loss_index", "open_interest", "positions"}
        for f in fields:
            assert f.name in containers or f.type in ("int", "bool"), (cls, f.name, f.type)
    model = Model()
    mutable = {k for k, v in model.__dict__.items() if not isinstance(v, int | bool)}
    assert mutable == {
        "fund_balances",
        "fund_allowances",
        "fund_operators",
        "redeem_requests",
        "stale",
        "markets",
        "accounts",
        "filled",
        "cancelled",
        "scheduled",
    }


def test_model_copy_is_independent(busy_model):
    twin = busy_model.copy()
    assert type(twin) is type(busy_model) and twin.__dict__ == busy_model.__dict__
    a = next(iter(twin.accounts))
    twin.deposit(a, 1)
    twin.markets[0].loss_index[0] += 1
    assert twin.__dict__ != busy_model.__dict__
    assert busy_model.__dict__ == copy.deepcopy(busy_model).__dict__


def random_op(rng: random.Random, model: Model, accounts: list[str], i: int) -> tuple[str, tuple]:
    a, b = rng.sample(accounts, 2)
    m = rng.randrange(len(model.markets))
    q = rng.randrange(1, 50 * WAD)
    price = model.markets[m].price * rng.randint(90, 110) // 100
    amount = rng.randrange(1, 10**10)
    op = rng.choice(["deposit", "withdraw", "match", "liquidate", "settle", "set_price", "stake", "unstake"])
    args = {
        "deposit": (a, amount),
        "withdraw": (a, amount),
        "match": (
            Order(a, m, True, q, price, 10**6 + i, FAR_EXPIRY),
            True,
            Order(b, m, False, q, price, 10**6 + i, FAR_EXPIRY),
            True,
            q,
        ),
        "liquidate": (a, b),
        "settle": (a,),
        "set_price": (m, price),
        "stake": (a, amount),
        "unstake": (a, amount),
    }[op]
    return op, args


def test_rollback_restores_exactly_what_deepcopy_would(busy_model):
    """Random operations, many of them refused; after each, the model's state is what it was
    before (a refusal) or what the operation made of a deep copy of it (a success)."""
    model = busy_model.copy()
    rng = random.Random(5)
    accounts = list(model.accounts)
    rollbacks = 0
    for i in range(400):
        op, args = random_op(rng, model, accounts, i)
        before = copy.deepcopy(model.__dict__)
        reference = object.__new__(Model)
        reference.__dict__.update(copy.deepcopy(before))
        try:
            result = ("ok", getattr(model, op)(*args))
        except ModelRevert as err:
            result = ("revert", err.name)
            rollbacks += 1
            assert model.__dict__ == before, (i, op)
        # The same operation on the deep copy, run without the transaction wrapper: a refusal
        # leaves it half-way, so only a success is compared.
        try:
            method = getattr(Model, op)  # set_price / set_stale check before writing: not atomic
            expected = ("ok", getattr(method, "__wrapped__", method)(reference, *args))
        except ModelRevert as err:
            expected = ("revert", err.name)
        assert result == expected, (i, op)
        if result[0] == "ok":
            assert model.__dict__ == reference.__dict__, (i, op)
    assert rollbacks > 20

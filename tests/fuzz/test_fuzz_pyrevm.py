"""The CI fuzz profile on pyrevm (in-process, a few seconds), and the codecs it relies on."""

from __future__ import annotations

import random

import pytest
from eth_abi import decode, encode

from backstop.chain.abi import Artifacts, encode_call
from backstop.chain.evm import PyRevmBackend
from backstop.orders import Order, order_digest, order_struct_hash, recover_signer, sign_order, to_tuple
from tests.fuzz.driver import run_ci
from tests.fuzz.machine import BackstopMachine, replay
from tests.fuzz.world import DEPLOYER, Calls, World, fast_struct_hash


@pytest.fixture(scope="module")
def world():
    return World(PyRevmBackend(), Artifacts.load())


def random_order(rng: random.Random, world: World) -> Order:
    return Order(
        account=rng.choice(world.addresses),
        market_id=rng.randrange(3),
        is_buy=rng.random() < 0.5,
        size=rng.randrange(1, 2**127),
        limit_price=rng.randrange(1, 2**127),
        nonce=rng.randrange(2**64),
        expiry=rng.randrange(2**40),
    )


def test_ci_profile_on_pyrevm_matches_the_model(world, capsys):
    result = run_ci(world)
    with capsys.disabled():
        print(f"\n{result.line}")
    if result.error is not None:
        raise result.error
    assert result.steps > 1_000


def test_hand_signed_orders_match_eth_account_and_the_engine(world):
    """coincurve over the hand-built digest gives eth-account's signature, which the engine accepts."""
    rng = random.Random(7)
    chain_id = world.backend.chain_id
    for _ in range(20):
        order = random_order(rng, world)
        owner = world.addresses.index(order.account)
        signed = world.sign(owner, order)
        assert signed.digest == order_digest(order, chain_id, world.engine)
        assert signed.signature == sign_order(order, world.actors[owner].secret, chain_id, world.engine)
        assert recover_signer(order, signed.signature, chain_id, world.engine).lower() == order.account
        assert fast_struct_hash(order) == order_struct_hash(order)
        digest = world.backend.view(
            DEPLOYER,
            world.engine,
            encode_call("hashOrder((address,uint256,bool,uint256,uint256,uint256,uint256))", to_tuple(order)),
        )
        assert digest == signed.digest


def test_match_calldata_is_the_abi_encoding(world):
    rng = random.Random(8)
    for _ in range(10):
        a, b = random_order(rng, world), random_order(rng, world)
        sa, sb = bytes(rng.randrange(256) for _ in range(65)), bytes(rng.randrange(256) for _ in range(64))
        fill = rng.randrange(2**128)
        expected = Calls.MATCH + encode(
            [
                "(address,uint256,bool,uint256,uint256,uint256,uint256)",
                "bytes",
                "(address,uint256,bool,uint256,uint256,uint256,uint256)",
                "bytes",
                "uint256",
            ],
            [to_tuple(a), sa, to_tuple(b), sb, fill],
        )
        assert Calls.match(a, sa, b, sb, fill) == expected


def test_lens_flat_snapshot_agrees_with_its_structured_views(world):
    """After a random run, snapshotWords equals accounts()/markets()/system() decoded by eth-abi."""
    BackstopMachine.world = world
    from tests.fuzz.driver import Drawer

    drawer, rng = Drawer(), random.Random(3)
    program = [drawer.draw(rng) for _ in range(120)]
    replay(world, program)
    snap = world.lens_snapshot()
    account_type = (
        "(address,bool,int256,uint256,int256,uint256,uint256,int256,uint256[],int256[],int256[],"
        "uint256,(uint128,uint128,uint64),uint256,uint256)[]"
    )
    raw = world.backend.view(DEPLOYER, world.lens, encode_call("accounts(address[])", world.addresses))
    [accounts] = decode([account_type], raw)
    for acc, got in zip(accounts, snap.accounts, strict=True):
        assert (got.margin, got.pending, got.priced) == (acc[2], acc[3], acc[1])
        assert (got.equity, got.imr, got.mmr, got.free) == (acc[4], acc[5], acc[6], acc[7])
        assert (got.markets, got.sizes, got.notionals) == (list(acc[8]), list(acc[9]), list(acc[10]))
        assert (got.fund_shares, got.request, got.wallet, got.min_nonce) == (
            acc[11],
            acc[12],
            acc[13],
            acc[14],
        )
    raw = world.backend.view(DEPLOYER, world.lens, encode_call("markets()"))
    [markets] = decode(["(uint256,uint256,uint256,bool,bool,uint256)[]"], raw)
    for m, got in zip(markets, snap.markets, strict=True):
        assert (got.open_interest, got.long_index, got.short_index, got.paused, got.priced, got.price) == m
    raw = world.backend.view(DEPLOYER, world.lens, encode_call("system()"))
    [system] = decode(["(" + ",".join(["uint256"] * 3 + ["int256"] * 5 + ["uint256"] * 7) + ")"], raw)
    assert system == (
        snap.block_number,
        snap.timestamp,
        snap.vault_assets,
        snap.liabilities,
        snap.dust,
        snap.total_margin,
        snap.net_open_notional,
        snap.unsettled_loss,
        snap.vault_tokens,
        snap.fund_tokens,
        snap.fund_credit,
        snap.fund_assets,
        snap.fund_supply,
        snap.coverable,
        snap.market_count,
    )
    assert snap.vault_assets == snap.vault_tokens * world.scale


def test_lens_snapshot_decodes_to_the_suites_own_views(world):
    """After a random run, every decoded field of snapshotWords (tests/fuzz/lens.py) equals what
    the engine, the vault and the fund answer themselves, field by field."""
    BackstopMachine.world = world
    from tests.fuzz.driver import Drawer

    drawer, rng = Drawer(), random.Random(11)
    replay(world, [drawer.draw(rng) for _ in range(150)])
    snap = world.lens_snapshot()
    b = world.backend

    def read(to: str, types: list[str], signature: str, *args):
        return decode(types, b.view(DEPLOYER, to, encode_call(signature, *args)))

    engine, vault, fund = world.engine, world.vault, world.fund
    assert (snap.vault_assets, snap.liabilities, snap.dust) == read(
        engine, ["uint256", "int256", "int256"], "solvency()"
    )
    assert snap.timestamp == b.now
    assert (snap.net_open_notional,) == read(engine, ["int256"], "netOpenNotional()")
    assert (snap.unsettled_loss,) == read(engine, ["int256"], "unsettledLoss()")
    assert (snap.total_margin,) == read(vault, ["int256"], "totalMargin()")
    assert (snap.fund_assets,) == read(fund, ["uint256"], "totalAssets()")
    assert (snap.fund_supply,) == read(fund, ["uint256"], "totalSupply()")
    assert (snap.coverable,) == read(fund, ["uint256"], "coverable()")
    assert (snap.vault_tokens,) == read(world.token, ["uint256"], "balanceOf(address)", vault)
    assert (snap.fund_tokens,) == read(world.token, ["uint256"], "balanceOf(address)", fund)
    assert (snap.fund_credit,) == read(vault, ["uint256"], "fundCredit()")
    assert snap.fund_assets == snap.fund_tokens + snap.fund_credit
    assert (snap.market_count,) == read(engine, ["uint256"], "marketCount()") == (len(snap.markets),)
    for m, ms in enumerate(snap.markets):
        assert (ms.open_interest,) == read(engine, ["uint256"], "openInterestOf(uint256)", m)
        assert (ms.long_index, ms.short_index) == read(
            engine, ["uint256", "uint256"], "lossIndexOf(uint256)", m
        )
        assert (bool(ms.paused),) == read(engine, ["bool"], "isPaused(uint256)", m)
    for a, acc in zip(world.addresses, snap.accounts, strict=True):
        assert (acc.margin,) == read(vault, ["int256"], "marginOf(address)", a)
        assert (acc.pending,) == read(engine, ["uint256"], "pendingLossOf(address)", a)
        assert (acc.markets,) == tuple(list(x) for x in read(engine, ["uint256[]"], "marketsOf(address)", a))
        assert len(acc.markets) == acc.market_count
        for m in range(snap.market_count):
            position = read(engine, ["int256", "int256"], "positionOf(address,uint256)", a, m)
            assert (acc.sizes[m], acc.notionals[m]) == position
        if acc.priced:
            assert (acc.equity,) == read(engine, ["int256"], "equityOf(address)", a)
            assert (acc.imr,) == read(engine, ["uint256"], "initialMarginOf(address)", a)
            assert (acc.mmr,) == read(engine, ["uint256"], "maintenanceMarginOf(address)", a)
            assert (acc.free,) == read(engine, ["int256"], "freeCollateralOf(address)", a)
        assert (acc.fund_shares,) == read(fund, ["uint256"], "balanceOf(address)", a)
        assert acc.request == read(fund, ["(uint128,uint128,uint64)"], "redeemRequestOf(address)", a)[0]
        assert (acc.wallet,) == read(world.token, ["uint256"], "balanceOf(address)", a)
        assert (acc.min_nonce,) == read(engine, ["uint256"], "minNonceOf(address)", a)
    assert any(acc.markets and acc.priced for acc in snap.accounts)  # the run left positions to compare


def test_world_reset_restores_state_and_time(world):
    """Every run starts from genesis: the chain state, the model and the block time."""
    start = world.genesis_time
    deposit = 5 * world.token_unit // 1_000
    program = [("advance_time", {"kind": 14, "refresh": 1}), ("deposit", {"who": 0, "kind": 1, "amount": 5})]
    machine = replay(world, program)
    assert world.backend.now == start + 86_400
    assert machine.model.margin(world.addresses[0]) == (2_000 * world.token_unit + deposit) * world.scale
    again = replay(world, [])
    assert world.backend.now == start == again.now
    assert again.model.margin(world.addresses[0]) == 2_000 * world.token_unit * world.scale

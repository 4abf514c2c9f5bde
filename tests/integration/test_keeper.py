"""The liquidation keeper against a deployed suite on anvil, with the reference model as referee.

Scenarios are built through the lockstep harness; then the real ``Keeper`` (web3.py, its own
signer, nonce and fees) runs against the chain, through a local JSON-RPC proxy where a test needs
to see or break its requests. After each pass, every account the model said was liquidatable
must be flat, each liquidation is mirrored into the model in the order of the ``Liquidated``
events, and ``check`` compares every observable with the model.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3

from backstop.keeper import Keeper, KeeperStateError, LocalSigner
from backstop.units import WAD
from tests.support.rpc_proxy import RpcProxy

TOKEN = 10**6
ETH = 2000 * WAD
BTC = 30_000 * WAD
LIQUIDATED_TOPIC = keccak(text="Liquidated(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")

# (margin in tokens, long size in ETH). At 1,800 eight are below maintenance, two of them tied;
# 300 on 1 ETH keeps E = 100 ≥ MMR = 90 and 2,000 on 4 ETH is safe. At 1,700-1,750 all but the last
# are liquidatable and most are bankrupt.
ETH_BOOK = [
    (210, 1),
    (250, 1),
    (250, 1),
    (300, 1),
    (420, 2),
    (480, 2),
    (520, 2),
    (700, 3),
    (760, 3),
    (2000, 4),
]


@pytest.fixture
def traders(accounts):
    return list(accounts[10:30])


@pytest.fixture
def shorts(accounts):
    return [accounts[30], accounts[31]]


@pytest.fixture
def keeper_accounts(system, accounts):
    """Two keeper accounts the tests never send from through Ape after funding them, so the
    keepers' own nonce tracking is the only writer."""
    keepers = [accounts[40], accounts[41]]
    for k in keepers:
        system.deposit(k, 1_000_000 * TOKEN)
    return keepers


@pytest.fixture
def start_block(chain, system):
    """The first block worth indexing: the suite is deployed, nothing traded yet."""
    return chain.blocks.head.number


def web3_for(url: str) -> Web3:
    """A plain web3 client, with web3's own retries off: only the keeper's backoff is at work."""
    return Web3(HTTPProvider(url, exception_retry_configuration=None))


def open_book(system, market: int, price: int, book, traders, shorts, *, unit: int = WAD) -> list:
    """Each trader deposits its margin and buys its size from a well-funded short at ``price``."""
    for short in shorts:
        if system.model.margin(short.address) == 0:
            system.deposit(short, 5_000_000 * TOKEN)
    for i, ((margin, size), trader) in enumerate(zip(book, traders, strict=False)):
        system.deposit(trader, margin * TOKEN)
        system.trade(trader, shorts[i % len(shorts)], market, size * unit, price)
    return traders[: len(book)]


def model_order(system, accounts) -> list[str]:
    """What the keeper must do, from the model: liquidatable accounts, most negative E − MMR
    first, ties by address."""
    model = system.model
    chosen = [a.address for a in accounts if model.liquidatable(a.address)]
    return sorted(chosen, key=lambda a: (model.equity(a) - model.maintenance_margin(a), a.lower()))


def liquidations(web3: Web3, engine: str, since: int) -> list[tuple[str, str]]:
    """``(account, liquidator)`` of every ``Liquidated`` event since ``since``, in chain order."""
    logs = web3.eth.get_logs(
        {"address": engine, "fromBlock": since, "toBlock": "latest", "topics": [LIQUIDATED_TOPIC.hex()]}
    )
    logs = sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
    return [
        (to_checksum_address(bytes(e["topics"][1])[-20:]), to_checksum_address(bytes(e["topics"][2])[-20:]))
        for e in logs
    ]


def mirror(system, events) -> None:
    """Replays the keeper's liquidations into the model, in chain order."""
    for account, liquidator in events:
        system.model.liquidate(account, liquidator)


def assert_flat(system, accounts) -> None:
    for a in accounts:
        assert list(system.engine.marketsOf(a)) == [], f"{a} still holds positions"


def assert_never_sent_after_failed_dry_run(proxy: RpcProxy) -> None:
    """Every transaction through ``proxy`` was preceded by a successful ``eth_call`` of the
    same call (same sender, target and calldata)."""
    last_dry_run: dict[tuple[str, str, str], bool] = {}
    sends = 0
    with proxy._lock:
        exchanges = list(proxy.exchanges)
    for ex in exchanges:
        if ex.method == "eth_call" and ex.response is not None:
            call = ex.params[0]
            if "from" in call:
                key = (call["from"].lower(), call["to"].lower(), call["data"].lower())
                last_dry_run[key] = ex.error is None
        elif ex.method == "eth_sendRawTransaction":
            raw = HexBytes(ex.params[0])
            tx = TypedTransaction.from_bytes(raw).as_dict()
            key = (
                Account.recover_transaction(raw).lower(),
                to_checksum_address(tx["to"]).lower(),
                HexBytes(tx["data"]).to_0x_hex().lower(),
            )
            assert last_dry_run.get(key) is True, f"sent {key} without a successful dry-run first"
            sends += 1
    assert sends > 0


# --- a crash ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_in_flight", "gas_budget", "per_batch"),
    # The keeper's gas model: 60,000 + 80,000 per one-market account. 5 M takes all nine in one
    # batch; 400,000 takes four at a time (380,000), so nine go in three batches.
    [(1, 5_000_000, 9), (4, 400_000, 4)],
    ids=["one-batch", "batches-of-4"],
)
def test_keeper_liquidates_every_liquidatable_account_after_a_crash(
    system,
    chain,
    traders,
    shorts,
    keeper_accounts,
    start_block,
    tmp_path,
    max_in_flight,
    gas_budget,
    per_batch,
):
    eth = system.add_market(ETH)
    system.stake(shorts[0], 300 * TOKEN)  # a small fund: some deficits covered, the rest socialized
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1700 * WAD)
    expected = model_order(system, book)
    assert len(expected) >= 6 and len(expected) < len(book)
    k = keeper_accounts[0]

    keeper = Keeper(
        web3_for(chain.provider.uri),
        system.engine.address,
        LocalSigner(k.private_key),
        state_path=tmp_path / "keeper.json",
        start_block=start_block,
        max_in_flight=max_in_flight,
        gas_budget=gas_budget,
    )
    report = keeper.run_once()

    # Indexed every trader, short and keeper that ever held a position; liquidated in order, in
    # liquidateMany batches cut to the gas budget.
    batches = -(-len(expected) // per_batch)
    assert len(expected) == 9
    assert report.scanned == len(book) + len(shorts)
    assert report.liquidatable == len(expected)
    assert report.liquidated == expected
    assert (report.sent, report.confirmed, report.batches, report.failed, report.lost_races) == (
        batches,
        batches,
        batches,
        0,
        0,
    )
    assert len(report.tx_hashes) == batches
    assert (report.partial_steps, report.unabsorbable) == (0, [])
    events = liquidations(keeper.web3, system.engine.address, start_block)
    assert events == [(a, k.address) for a in expected]
    assert_flat(system, [a for a in book if a.address in expected])
    mirror(system, events)
    system.check(*book, *shorts, k)

    # Counters are cumulative; the next pass finds nothing left to do.
    again = keeper.run_once()
    assert (again.liquidatable, again.sent) == (0, 0)
    assert keeper.counters["confirmed"] == batches
    assert keeper.counters["scanned"] == report.scanned + again.scanned
    state = json.loads((tmp_path / "keeper.json").read_text())
    assert state["chain_id"] == chain.chain_id
    assert state["engine"] == system.engine.address
    assert {a.address for a in book} <= set(state["accounts"])


def test_dry_run_reports_but_sends_nothing(system, chain, traders, shorts, keeper_accounts, start_block):
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1800 * WAD)
    expected = model_order(system, book)
    k = keeper_accounts[0]
    nonce = chain.provider.web3.eth.get_transaction_count(k.address)

    keeper = Keeper(
        web3_for(chain.provider.uri), system.engine.address, LocalSigner(k.private_key), dry_run=True
    )
    report = keeper.run_once()

    assert report.liquidatable == len(expected) == 8
    assert (report.sent, report.confirmed, report.failed, report.liquidated) == (0, 0, 0, [])
    assert chain.provider.web3.eth.get_transaction_count(k.address) == nonce
    assert all(system.model.liquidatable(a) for a in expected)
    system.check(*book, *shorts, k)


# --- restart ---------------------------------------------------------------------------------------


def test_keeper_restarted_mid_run_resumes_from_its_cursor(
    system, chain, traders, shorts, keeper_accounts, start_block, tmp_path
):
    eth = system.add_market(ETH)
    btc = system.add_market(BTC)
    eth_book = open_book(system, eth, ETH, ETH_BOOK[:6], traders[:6], shorts)
    # BTC longs: margins on 0.1 BTC (notional 3,000, IM 300, MM 150).
    btc_book = open_book(
        system, btc, BTC, [(320, 1), (340, 1), (360, 1), (900, 1)], traders[6:10], shorts, unit=WAD // 10
    )
    chain.mine(20)  # the BTC positions sink below the keeper's reorg window: only the state file knows them
    system.set_price(eth, 1700 * WAD)  # first crash: ETH only
    first = model_order(system, eth_book + btc_book)
    assert first and all(a in {t.address for t in eth_book} for a in first)
    state_path = tmp_path / "keeper.json"
    k = keeper_accounts[0]

    keeper = Keeper(
        web3_for(chain.provider.uri),
        system.engine.address,
        LocalSigner(k.private_key),
        state_path=state_path,
        start_block=start_block,
    )
    report = keeper.run_once()
    assert report.liquidated == first
    mirror(system, liquidations(keeper.web3, system.engine.address, start_block))
    del keeper  # the process dies here

    state = json.loads(state_path.read_text())
    cursor = state["cursor_block"]
    assert cursor > start_block
    assert {a.address for a in btc_book} <= set(state["accounts"])
    # Traders who open positions while the keeper is down, then the second crash.
    late_book = open_book(system, btc, BTC, [(330, 1), (350, 1)], traders[10:12], shorts, unit=WAD // 10)
    system.set_price(btc, 27_000 * WAD)
    second = model_order(system, eth_book + btc_book + late_book)
    assert {a.address for a in late_book} <= set(second)
    assert set(second) & {a.address for a in btc_book}
    mark = chain.blocks.head.number

    with RpcProxy(chain.provider.uri) as proxy:
        restarted = Keeper(
            web3_for(proxy.url),
            system.engine.address,
            LocalSigner(k.private_key),
            state_path=state_path,
            start_block=start_block,
        )
        assert restarted.cursor == cursor
        report = restarted.run_once()
        scans = [e for e in proxy.calls("eth_getLogs") if len(e.params[0]["topics"]) == 1]

    # No rescan from genesis: the account index was read from the state file, and the only logs
    # fetched start right after the persisted cursor.
    assert scans and int(scans[0].params[0]["fromBlock"], 16) == cursor + 1
    assert all(int(e.params[0]["fromBlock"], 16) > cursor for e in scans)
    assert report.liquidated == second
    assert report.failed == report.lost_races == 0
    events = liquidations(restarted.web3, system.engine.address, mark)
    assert [a for a, _ in events] == second
    assert_flat(system, [a for a in btc_book + late_book if a.address in second])
    mirror(system, events)
    system.check(*eth_book, *btc_book, *late_book, *shorts, k)


def test_state_file_of_another_engine_or_chain_is_refused(system, chain, keeper_accounts, tmp_path):
    chain.mine(15)  # a cursor deep enough to carry a block hash
    signer = LocalSigner(keeper_accounts[0].private_key)
    web3 = web3_for(chain.provider.uri)
    path = tmp_path / "keeper.json"
    Keeper(web3, system.engine.address, signer, state_path=path).run_once()
    assert json.loads(path.read_text())["engine"] == system.engine.address

    with pytest.raises(KeeperStateError, match="engine"):
        Keeper(web3, system.vault.address, signer, state_path=path)
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "chain_id": 1}))
    with pytest.raises(KeeperStateError, match="chain 1"):
        Keeper(web3, system.engine.address, signer, state_path=path)
    path.write_text(json.dumps({**body, "cursor_hash": "0x" + "11" * 32}))
    with pytest.raises(KeeperStateError, match="restarted chain"):
        Keeper(web3, system.engine.address, signer, state_path=path)


# --- a flaky node ----------------------------------------------------------------------------------


def test_keeper_behind_a_flaky_rpc_still_converges(
    system, chain, traders, shorts, keeper_accounts, start_block, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1750 * WAD)
    expected = model_order(system, book)
    k = keeper_accounts[0]

    # Every 3rd request fails (alternately a 502 before the node sees it, and a connection dropped
    # after the node executed it); the answers to the 1st and 3rd transactions sent are lost too.
    with RpcProxy(
        chain.provider.uri, fail_every=3, drop_after_forward={"eth_sendRawTransaction": {0, 2}}
    ) as proxy:
        keeper = Keeper(
            web3_for(proxy.url),
            system.engine.address,
            LocalSigner(k.private_key),
            state_path=tmp_path / "keeper.json",
            start_block=start_block,
            gas_budget=300_000,  # three one-market accounts per batch: three transactions
        )
        report = keeper.run_once()
        again = keeper.run_once()
        failed = proxy.failures

    assert {f.failure for f in failed} == {"502", "drop"}
    assert any(f.method == "eth_sendRawTransaction" for f in failed)
    # A send whose answer was lost is recognised by its hash when re-sent, never signed twice.
    assert "keeper send_recovered" in caplog.text
    assert keeper.counters["rpc_retries"] == len(failed)  # every failure was retried, none gave up
    assert report.liquidated == expected
    batches = -(-len(expected) // 3)
    assert batches >= 3
    assert (report.sent, report.confirmed, report.failed, report.lost_races) == (batches, batches, 0, 0)
    assert (again.liquidatable, again.sent) == (0, 0)
    # No double sends: one liquidation per account, in order.
    events = liquidations(chain.provider.web3, system.engine.address, start_block)
    assert events == [(a, k.address) for a in expected]
    assert_flat(system, [a for a in book if a.address in expected])
    mirror(system, events)
    system.check(*book, *shorts, k)


def test_keeper_narrows_log_ranges_a_node_refuses(
    system, chain, traders, shorts, keeper_accounts, start_block
):
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1800 * WAD)
    expected = model_order(system, book)
    k = keeper_accounts[0]

    with RpcProxy(chain.provider.uri, max_log_range=16) as proxy:
        keeper = Keeper(
            web3_for(proxy.url), system.engine.address, LocalSigner(k.private_key), start_block=start_block
        )
        report = keeper.run_once()
        logs = proxy.calls("eth_getLogs")

    refused = [e for e in logs if e.error]
    served = [e for e in logs if not e.error]
    assert refused and served
    assert all(int(e.params[0]["toBlock"], 16) - int(e.params[0]["fromBlock"], 16) < 16 for e in served)
    assert report.scanned == len(book) + len(shorts)
    assert report.liquidated == expected
    mirror(system, liquidations(chain.provider.web3, system.engine.address, start_block))
    system.check(*book, *shorts, k)


def test_run_forever_passes_once_per_new_block(system, chain, traders, shorts, keeper_accounts, start_block):
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1800 * WAD)
    expected = model_order(system, book)
    k = keeper_accounts[0]
    keeper = Keeper(
        web3_for(chain.provider.uri),
        system.engine.address,
        LocalSigner(k.private_key),
        start_block=start_block,
    )

    # Pass 1 liquidates, mining blocks; the new head starts pass 2, which finds nothing left.
    keeper.run_forever(poll_interval=0.01, max_passes=2)

    assert keeper.counters["passes"] == 2
    assert keeper.counters["liquidatable"] == len(expected)
    assert keeper.counters["confirmed"] == 1  # one batch
    assert keeper.counters["failed"] == keeper.counters["lost_races"] == 0
    events = liquidations(chain.provider.web3, system.engine.address, start_block)
    assert [a for a, _ in events] == expected
    mirror(system, events)
    system.check(*book, *shorts, k)


# --- two keepers racing ----------------------------------------------------------------------------


class SynchronizedKeeper(Keeper):
    """A keeper that waits for its rival after scanning, so both act on the same snapshot."""

    def __init__(self, *args, barrier: threading.Barrier, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.barrier = barrier

    def scan(self, block="latest"):
        snapshot = super().scan(block)
        self.barrier.wait(timeout=60)
        return snapshot


def test_two_racing_keepers_never_both_liquidate_an_account(
    system, chain, traders, shorts, keeper_accounts, start_block, tmp_path
):
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1750 * WAD)
    expected = model_order(system, book)
    barrier = threading.Barrier(2)

    with RpcProxy(chain.provider.uri) as p0, RpcProxy(chain.provider.uri) as p1:
        keepers = [
            SynchronizedKeeper(
                web3_for(proxy.url),
                system.engine.address,
                LocalSigner(k.private_key),
                state_path=tmp_path / f"keeper-{i}.json",
                start_block=start_block,
                barrier=barrier,
            )
            for i, (proxy, k) in enumerate(zip((p0, p1), keeper_accounts, strict=True))
        ]
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(keeper.run_once) for keeper in keepers]
            reports = [f.result(timeout=300) for f in futures]  # both return normally
        proxies = (p0, p1)

    # Each liquidatable account was liquidated exactly once, by one of the two.
    events = liquidations(chain.provider.web3, system.engine.address, start_block)
    assert sorted(a for a, _ in events) == sorted(expected)
    assert len(events) == len(expected)
    assert {liquidator for _, liquidator in events} <= {k.address for k in keeper_accounts}
    # One winner and one loser per account: the loser records a lost race (its batch's dry run
    # liquidates nobody, or the engine skips every account of its mined batch), never a failure.
    assert sum(len(r.liquidated) for r in reports) == len(expected)
    assert sum(r.lost_races for r in reports) == len(expected)
    assert all(r.failed == 0 for r in reports)
    assert all(r.liquidatable == len(expected) for r in reports)
    for report, k in zip(reports, keeper_accounts, strict=True):
        assert report.liquidated == [a for a, who in events if who == k.address]
    for proxy in proxies:
        if proxy.calls("eth_sendRawTransaction"):
            assert_never_sent_after_failed_dry_run(proxy)
    assert_flat(system, [a for a in book if a.address in expected])
    mirror(system, events)
    system.check(*book, *shorts, *keeper_accounts)


# --- a keeper with little capital ------------------------------------------------------------------


def test_small_keeper_steps_into_a_whale_and_reports_what_it_cannot_absorb(
    system, chain, traders, shorts, accounts, start_block, caplog
):
    """A keeper with 2,000 of margin after ETH falls to 1,780:

    - ``deep``, long 20 at 2,000 with 4,000 (E = −400, bankrupt): a whole takeover needs IMR 3,560
      against the keeper's 2,000 + K 356, so it is logged ``unabsorbable`` with the capital it
      needs for free collateral ≥ 10 % of IMR: 356 − (2,356 − 3,560) = 1,560. A partial step is
      not allowed on a bankrupt account;
    - ``whale``, long 40 at 2,000 with 11,000 (E = 2,200 < MMR 3,560, solvent; E − MMR = −1,360
      comes after deep's −2,180): too big to take whole, so the keeper takes the largest partial
      step its capital allows, about
      2,000 / (1,780 · 10 % · 1.1 − 17.8) ≈ 11.2 ETH."""
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth = system.add_market(ETH)
    deep, whale = traders[0], traders[1]
    open_book(system, eth, ETH, [(4_000, 20), (11_000, 40)], [deep, whale], shorts)
    k = accounts[42]
    system.deposit(k, 2_000 * TOKEN)
    system.set_price(eth, 1780 * WAD)

    keeper = Keeper(
        web3_for(chain.provider.uri),
        system.engine.address,
        LocalSigner(k.private_key),
        start_block=start_block,
    )
    report = keeper.run_once()

    [u] = report.unabsorbable
    assert (u.account, u.equity, u.capital_needed, u.reason) == (
        deep.address,
        -400 * WAD,
        1_560 * WAD,
        "capital",
    )
    assert (
        f"keeper unabsorbable account={deep.address} equity=-400.00 capital_needed=1,560.00 reason=capital"
        in caplog.text
    )
    assert (report.partial_steps, report.sent, report.confirmed, report.liquidated) == (1, 1, 1, [])
    size, _ = system.engine.positionOf(k, eth)
    assert 11 * WAD < size < 12 * WAD
    assert system.engine.positionOf(whale, eth)[0] == 40 * WAD - size
    # The keeper kept its buffer, and used nearly all of it: one more 0.01 ETH would break it.
    free, imr = system.engine.freeCollateralOf(k), system.engine.initialMarginOf(k)
    assert free >= imr // 10
    assert free - imr // 10 < 2 * WAD
    # Mirror the step into the model and compare every observable.
    system.model.liquidate_position(whale.address, eth, size, k.address)
    system.check(deep, whale, *shorts, k)


def test_a_batch_whose_dry_run_fails_is_halved_and_the_rest_goes_through(
    system, chain, traders, shorts, keeper_accounts, start_block, monkeypatch, caplog
):
    """A plan gone wrong: the first batch also lists the keeper itself, so its dry run reverts
    (``SelfLiquidation``). The keeper halves it until the bad entry is alone, never sends a batch
    whose dry run failed, and liquidates every real target."""
    import backstop.keeper.act as act

    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    system.set_price(eth, 1750 * WAD)
    expected = model_order(system, book)
    k = keeper_accounts[0]
    real_plan = act.plan_pass

    def poisoned_plan(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        first = plan.actions[0]
        bad = act.Batch(
            accounts=(*first.accounts[:3], k.address, *first.accounts[3:]),
            gas=first.gas,
            market_counts=(*first.market_counts, 1),
        )
        return act.PassPlan(
            (bad, *plan.actions[1:]), plan.unabsorbable, plan.skipped, plan.skipped_self, plan.keeper_after
        )

    monkeypatch.setattr(act, "plan_pass", poisoned_plan)
    with RpcProxy(chain.provider.uri) as proxy:
        keeper = Keeper(
            web3_for(proxy.url), system.engine.address, LocalSigner(k.private_key), start_block=start_block
        )
        report = keeper.run_once()
        assert_never_sent_after_failed_dry_run(proxy)

    assert report.liquidated == expected
    assert report.failed == 1  # the keeper's own entry, alone
    assert "keeper batch_split" in caplog.text
    assert f"keeper failed account={k.address} stage=dry_run error=SelfLiquidation" in caplog.text
    mirror(system, liquidations(chain.provider.web3, system.engine.address, start_block))
    system.check(*book, *shorts, k)


# --- the keeper's own risk -------------------------------------------------------------------------


def health_calls(proxy: RpcProxy, engine: str, selector: bytes) -> int:
    """``healthOf`` eth_calls through ``proxy`` so far."""
    with proxy._lock:
        exchanges = list(proxy.exchanges)
    return sum(
        1
        for ex in exchanges
        if ex.method == "eth_call"
        and ex.params[0]["to"].lower() == engine.lower()
        and ex.params[0]["data"].lower().startswith("0x" + selector.hex())
    )


def test_the_keeper_logs_its_own_leverage_after_each_pass(
    system, chain, traders, shorts, accounts, start_block, caplog
):
    """A keeper with 20,000 of margin takes the eight accounts below maintenance at 1,800: 15 ETH
    (N = 27,000, IMR 2,700, MMR 1,350) at the oracle price (u = 0) and K = 1 % of N = 270, so
    E = 20,270, F = 17,570, leverage 27,000 / 20,270 = 1.33x, buffer 17,570 / 2,700 = 6.51:
    under a min_buffer of 7, so own_buffer_low on every pass."""
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth = system.add_market(ETH)
    book = open_book(system, eth, ETH, ETH_BOOK, traders, shorts)
    k = accounts[43]
    system.deposit(k, 20_000 * TOKEN)
    system.set_price(eth, 1800 * WAD)
    expected = model_order(system, book)
    assert sum(size for (_, size), t in zip(ETH_BOOK, book, strict=True) if t.address in expected) == 15

    with RpcProxy(chain.provider.uri) as proxy:
        keeper = Keeper(
            web3_for(proxy.url),
            system.engine.address,
            LocalSigner(k.private_key),
            start_block=start_block,
            min_buffer=7 * WAD,
        )
        selector = keeper.engine_abi.health_selector
        report = keeper.run_once()
        assert report.liquidated == expected
        views = (
            system.engine.equityOf(k),
            system.engine.initialMarginOf(k),
            system.engine.maintenanceMarginOf(k),
            system.engine.freeCollateralOf(k),
        )
        assert views == (20_270 * WAD, 2_700 * WAD, 1_350 * WAD, 17_570 * WAD)
        assert system.engine.positionOf(k, eth)[0] == 15 * WAD
        risk = keeper.own_risk
        assert (risk.equity, risk.imr, risk.mmr, risk.free, risk.notional) == (*views, 27_000 * WAD)
        assert report.own_risk == risk and report.own_buffer_low and keeper.own_buffer_low
        line = (
            "equity=20,270.00 imr=2,700.00 mmr=1,350.00 free=17,570.00 notional=27,000.00 "
            "leverage=1.33x buffer=6.51"
        )
        assert f"keeper own_risk block={risk.block} {line}" in caplog.messages
        low = "keeper own_buffer_low buffer=6.51 min_buffer=7.00 free=17,570.00 imr=2,700.00"
        assert caplog.messages.count(low) == 1

        # The next pass finds nothing to do: the same figures, read from the scan (the keeper is
        # indexed now) with no healthOf call of its own, and the warning again.
        before = health_calls(proxy, system.engine.address, selector)
        again = keeper.run_once()
        assert health_calls(proxy, system.engine.address, selector) - before == 1  # the scan's
    assert again.sent == 0
    assert f"keeper own_risk block={again.own_risk.block} {line}" in caplog.messages
    assert caplog.messages.count(low) == 2
    mirror(system, liquidations(chain.provider.web3, system.engine.address, start_block))
    system.check(*book, *shorts, k)


def test_the_keeper_honours_the_inherit_ceiling(
    system, chain, traders, shorts, accounts, start_block, caplog
):
    """A ceiling of 2,000 of notional at ETH 1,800: ``b`` (long 2 with 480, E − MMR = −100) comes
    first; taking it whole (N = 3,600) would pass the ceiling, so the keeper takes the partial step
    that fits, q = floor(2,000 / 1,800 · 1e18) wei = 1.111… ETH (N = 1,999.99…). Nothing is left
    for ``a`` (long 1 with 210, solvent): ``unabsorbable reason=ceiling``. On the next pass the
    keeper, at its ceiling, takes nothing."""
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    eth = system.add_market(ETH)
    b, a = open_book(system, eth, ETH, [(480, 2), (210, 1)], traders[:2], shorts)
    k = accounts[44]
    system.deposit(k, 100_000 * TOKEN)
    system.set_price(eth, 1800 * WAD)
    assert model_order(system, [a, b]) == [b.address, a.address]

    keeper = Keeper(
        web3_for(chain.provider.uri),
        system.engine.address,
        LocalSigner(k.private_key),
        start_block=start_block,
        max_inherit_notional=2_000 * WAD,
    )
    report = keeper.run_once()

    q = 2_000 * WAD * WAD // (1800 * WAD)
    assert q == 1_111_111_111_111_111_111
    assert (report.partial_steps, report.sent, report.confirmed, report.liquidated) == (1, 1, 1, [])
    assert report.ceiling_limited == [b.address, a.address]
    [u] = report.unabsorbable
    assert (u.account, u.equity, u.capital_needed, u.reason) == (a.address, 10 * WAD, 0, "ceiling")
    size, _ = system.engine.positionOf(k, eth)
    assert size == q
    # N = ceil(q·1,800) = 1,999.9999999999999998 ≤ 2,000; one wei more of base would pass it.
    assert keeper.own_risk.notional == size * 1800 == 2_000 * WAD - 200
    assert (size + 1) * 1800 > 2_000 * WAD
    assert (
        "keeper inherit_ceiling reached ceiling=2,000.00 notional_before=0.00 notional_after=2,000.00 "
        "partial=1 untaken=1"
    ) in caplog.messages
    assert f"keeper unabsorbable account={a.address} equity=10.00 capital_needed=0.00 reason=ceiling" in (
        caplog.messages
    )
    system.model.liquidate_position(b.address, eth, q, k.address)
    system.check(a, b, *shorts, k)

    again = keeper.run_once()
    assert again.liquidatable == 2 and again.sent == 0
    assert system.engine.positionOf(k, eth)[0] == q
    assert (
        "keeper inherit_ceiling reached ceiling=2,000.00 notional_before=2,000.00 notional_after=2,000.00 "
        "partial=0 untaken=2"
    ) in caplog.messages


# --- the node down ---------------------------------------------------------------------------------


def test_backoff_is_capped_while_the_node_is_down(system, chain, keeper_accounts, caplog):
    """Every request fails for six loop iterations: the waits between them double from the poll
    interval (1 s) and stop at 5 s; when the node is back, the next iteration runs a pass."""
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    waits: list[float] = []
    with RpcProxy(chain.provider.uri) as proxy:

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            if sum(1 for w in waits if w >= 1) == 6:
                proxy.fail_every = 0  # the node is back

        keeper = Keeper(
            web3_for(proxy.url),
            system.engine.address,
            LocalSigner(keeper_accounts[0].private_key),
            sleep=sleep,
        )
        proxy.fail_every = 1
        keeper.run_forever(poll_interval=1.0, max_passes=7)

    backoffs = [w for w in waits if w >= 1]
    assert backoffs == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert max(waits) == 5.0
    failed = [m for m in caplog.messages if m.startswith("keeper pass_failed")]
    assert len(failed) == 6 and failed[-1].endswith("retry_in_s=5.0")
    assert keeper.counters["passes"] == 1
    assert any(m.startswith("keeper pass block=") for m in caplog.messages)


def test_no_margin_is_warned_in_dry_run_mode_too(system, chain, accounts, caplog):
    caplog.set_level(logging.INFO, logger="backstop.keeper")
    k = accounts[45]  # never deposited
    Keeper(web3_for(chain.provider.uri), system.engine.address, LocalSigner(k.private_key), dry_run=True)
    assert f"keeper no_margin keeper={k.address} margin=0.00" in caplog.messages

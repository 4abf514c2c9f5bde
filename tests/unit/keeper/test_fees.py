"""The keeper's fee control (pure: a fake node, a fake clock): the max fee cap, the priority fee
setting, re-pricing a stuck transaction, and the profitability floor, with exact integers."""

from __future__ import annotations

import pytest
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from backstop.chain.rpc import Retrier
from backstop.chain.tx import GWEI, FeePolicy, bump_fees, fee_caps, gwei, over_cap, wei_of_gwei
from backstop.decisions import Batch, Book, MarketTerms, PartialStep
from backstop.decisions.capital import step_reward, whole_reward
from backstop.keeper import LocalSigner
from backstop.keeper.fees import FeeGate, action_reward, gas_cost, profitable
from backstop.keeper.sender import FeeCapped, Sent, TxSender
from backstop.keeper.state import COUNTER_NAMES, PassReport
from backstop.units import WAD

KEY = "0x" + "11" * 32
ENGINE = "0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE"


class FakeEth:
    """The node: a base fee, a suggested tip, a mempool by nonce; ``mine(nonce)`` mines what the
    pool holds for it."""

    def __init__(self, base_fee: int, tip: int = 3 * GWEI) -> None:
        self.base_fee = base_fee
        self.tip = tip
        self.tip_reads = 0
        self.sent: list[dict] = []  # every transaction received, decoded, with its hash
        self.pool: dict[int, str] = {}
        self.receipts: dict[str, dict] = {}
        self.refuse: str | None = None  # an error message for the next send

    def get_block(self, _block):
        return {"baseFeePerGas": self.base_fee}

    @property
    def max_priority_fee(self):
        self.tip_reads += 1
        return self.tip

    def get_transaction_count(self, _address, _block):
        return 7

    def send_raw_transaction(self, raw: bytes):
        if self.refuse:
            message, self.refuse = self.refuse, None
            raise Web3RPCError(message, rpc_response={"error": {"code": -32000, "message": message}})
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        tx_hash = "0x" + keccak(raw).hex()
        self.sent.append({**tx, "hash": tx_hash})
        self.pool[tx["nonce"]] = tx_hash
        return tx_hash

    def get_transaction_receipt(self, tx_hash):
        if tx_hash not in self.receipts:
            raise TransactionNotFound(tx_hash)
        return self.receipts[tx_hash]

    def mine(self, nonce: int) -> str:
        tx_hash = self.pool.pop(nonce)
        self.receipts[tx_hash] = {"status": 1, "transactionHash": tx_hash}
        return tx_hash


class FakeW3:
    def __init__(self, eth: FakeEth) -> None:
        self.eth = eth


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.hooks: list = []  # (time, action) run once the clock passes time

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for at, action in list(self.hooks):
            if self.now >= at:
                self.hooks.remove((at, action))
                action()


def make_sender(eth: FakeEth, clock: Clock | None = None, **policy) -> tuple[TxSender, list]:
    events: list[tuple[str, dict]] = []
    clock = clock or Clock()
    sender = TxSender(
        FakeW3(eth),  # type: ignore[arg-type]
        LocalSigner(KEY),
        31337,
        Retrier(max_retries=0, sleep=lambda _s: None),
        lambda _level, event, **fields: events.append((event, fields)),
        clock,
        policy=FeePolicy(**policy),
        receipt_timeout=120.0,
        sleep=clock.sleep,
    )
    return sender, events


TX = {"to": ENGINE, "data": b"\x12\x34", "gas": 300_000, "value": 0}


# --- the cap and the tip ---------------------------------------------------------------------------


def test_the_cap_clamps_the_max_fee_and_the_tip_never_exceeds_it():
    assert fee_caps(10 * GWEI, 2 * GWEI) == (22 * GWEI, 2 * GWEI)
    assert fee_caps(10 * GWEI, 2 * GWEI, max_fee=15 * GWEI) == (15 * GWEI, 2 * GWEI)
    assert fee_caps(10 * GWEI, 2 * GWEI, max_fee=30 * GWEI) == (22 * GWEI, 2 * GWEI)
    assert fee_caps(1 * GWEI, 5 * GWEI, max_fee=3 * GWEI) == (3 * GWEI, 3 * GWEI)
    assert over_cap(15 * GWEI + 1, 15 * GWEI) and not over_cap(15 * GWEI, 15 * GWEI)
    assert not over_cap(10**30, None)
    assert (gwei(3_500_000_000), gwei(GWEI), gwei(1), gwei(0)) == ("3.5", "1", "0.000000001", "0")
    assert (wei_of_gwei("3.5"), wei_of_gwei(" 30 "), wei_of_gwei("0.000000001")) == (
        3_500_000_000,
        30 * GWEI,
        1,
    )
    for bad in ("-1", "abc", "0.0000000001", "nan", "inf"):
        with pytest.raises(ValueError, match="gwei"):
            wei_of_gwei(bad)


def test_the_sender_signs_with_the_capped_fee_and_the_priority_setting():
    eth = FakeEth(base_fee=10 * GWEI, tip=3 * GWEI)
    sender, _ = make_sender(eth, max_fee=20 * GWEI, priority_fee=2 * GWEI)
    sent = sender.send(TX)
    [tx] = eth.sent
    assert (tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]) == (20 * GWEI, 2 * GWEI)  # 22 capped at 20
    assert (tx["nonce"], sent.nonce, sent.hashes) == (7, 7, [tx["hash"]])
    assert eth.tip_reads == 0  # the setting, not eth_maxPriorityFeePerGas

    eth = FakeEth(base_fee=10 * GWEI, tip=3 * GWEI)
    sender, _ = make_sender(eth)
    sender.send(TX)
    assert (eth.sent[0]["maxFeePerGas"], eth.sent[0]["maxPriorityFeePerGas"]) == (23 * GWEI, 3 * GWEI)
    assert eth.tip_reads == 1


def test_a_base_fee_above_the_cap_sends_nothing_and_is_counted_failed():
    eth = FakeEth(base_fee=3_500_000_001)
    sender, _ = make_sender(eth, max_fee=3 * GWEI)
    with pytest.raises(FeeCapped, match="base fee 3.500000001 gwei is above the max fee 3 gwei"):
        sender.fee_caps()
    gate, events = gate_for(sender, eth_price=2000 * WAD)
    report = PassReport()
    assert gate._fee_gate(200_000, 10**30, ("0xa", "0xb"), "0xa,0xb", report) is None
    assert (report.failed, report.unprofitable, eth.sent) == (2, 0, [])
    assert events == [
        ("fee_capped", {"accounts": "0xa,0xb", "base_fee_gwei": "3.500000001", "max_fee_gwei": "3"})
    ]
    with pytest.raises(FeeCapped):
        sender.send(TX, None)
    assert eth.sent == []


def test_fee_settings_are_checked():
    for bad in ({"max_fee": 0}, {"priority_fee": -1}, {"fee_bump_pct": 9}, {"reprice_after": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FeePolicy(**bad)


# --- re-pricing --------------------------------------------------------------------------------------


def test_the_bump_is_12_percent_capped_and_stops_under_10_percent():
    assert bump_fees((GWEI, GWEI)) == (1_120_000_000, 1_120_000_000)
    assert bump_fees((10 * GWEI, GWEI), 12, max_fee=11 * GWEI) == (11 * GWEI, 1_120_000_000)  # +10 %: ok
    assert bump_fees((10 * GWEI, GWEI), 12, max_fee=11 * GWEI - 1) is None  # under +10 %
    assert bump_fees((100, 100), 12, max_fee=111) == (111, 111)  # the tip clamped to the max fee
    assert bump_fees((100, 100), 12, max_fee=109) is None
    assert bump_fees((1, 0)) == (2, 1)  # at least 1 wei up: geth wants strictly more
    assert bump_fees((9, 9), 20) == (10, 10)


def test_a_stuck_transaction_is_resigned_with_the_same_nonce_and_the_replacement_mines():
    eth = FakeEth(base_fee=0)
    clock = Clock()
    sender, events = make_sender(eth, clock, priority_fee=GWEI, reprice_after=12.0)
    sent = sender.send(TX)
    clock.hooks.append((13.0, lambda: eth.mine(7)))  # mined after the first re-pricing (at 12 s)
    receipt = sender.wait(sent)

    first, second = eth.sent
    assert (first["maxFeePerGas"], first["maxPriorityFeePerGas"]) == (GWEI, GWEI)
    assert (second["maxFeePerGas"], second["maxPriorityFeePerGas"]) == (1_120_000_000, 1_120_000_000)
    for key in ("nonce", "data", "gas", "to", "value"):
        assert first[key] == second[key], key
    assert sent.hashes == [first["hash"], second["hash"]]
    assert receipt["transactionHash"] == sent.mined == second["hash"]
    [(event, fields)] = [e for e in events if e[0] == "repriced"]
    assert fields == {
        "tx": first["hash"],
        "new_tx": second["hash"],
        "nonce": 7,
        "max_fee_gwei": "1.12",
        "priority_fee_gwei": "1.12",
    }


def test_the_original_mining_after_a_replacement_is_its_receipt():
    eth = FakeEth(base_fee=0)
    clock = Clock()
    sender, _ = make_sender(eth, clock, priority_fee=GWEI, reprice_after=12.0)
    sent = sender.send(TX)
    original = sent.tx_hash

    def mine_original():
        eth.receipts[original] = {"status": 1, "transactionHash": original}

    clock.hooks.append((13.0, mine_original))
    sender.wait(sent)
    assert len(sent.hashes) == 2 and sent.mined == original


def test_the_cap_stops_repricing_once_and_the_wait_times_out_naming_every_hash():
    eth = FakeEth(base_fee=0)
    clock = Clock()
    # 1 → 1.12 gwei fits under 1.2 gwei; the next bump would be 1.2 (+7 %): capped.
    sender, events = make_sender(eth, clock, priority_fee=GWEI, max_fee=1_200_000_000, reprice_after=12.0)
    sent = sender.send(TX)
    with pytest.raises(TimeoutError, match="no receipt for") as info:
        sender.wait(sent)
    assert len(eth.sent) == 2
    assert [e for e, _ in events].count("reprice_capped") == 1
    assert all(h in str(info.value) for h in sent.hashes)
    assert clock.now > 120.0


def test_a_replacement_the_node_refuses_stops_repricing():
    eth = FakeEth(base_fee=0)
    clock = Clock()
    sender, events = make_sender(eth, clock, priority_fee=GWEI, reprice_after=5.0)
    sent = sender.send(TX)
    eth.refuse = "replacement transaction underpriced"
    clock.hooks.append((30.0, lambda: eth.mine(7)))
    receipt = sender.wait(sent)
    assert receipt["transactionHash"] == sent.hashes[0] and len(sent.hashes) == 1
    assert [e for e, _ in events].count("reprice_failed") == 1


def test_no_repricing_without_reprice_after():
    eth = FakeEth(base_fee=0)
    clock = Clock()
    sender, _ = make_sender(eth, clock, reprice_after=None)
    sent = sender.send(TX)
    clock.hooks.append((60.0, lambda: eth.mine(7)))
    sender.wait(sent)
    assert len(eth.sent) == 1 and isinstance(sent, Sent)


# --- the profitability floor -----------------------------------------------------------------------


def terms(market_id: int = 0, price: int = 2000 * WAD, ratio: int = WAD // 100, cap: int = 10**30):
    return MarketTerms(
        market_id=market_id,
        price=price,
        im_ratio=WAD // 10,
        mm_ratio=WAD // 20,
        keeper_reward_ratio=ratio,
        keeper_reward_cap=cap,
        insurance_fee_ratio=WAD // 100,
    )


class FakeBooks:
    def __init__(self, by_market: dict) -> None:
        self.by_market = by_market
        self.reads = 0

    def terms(self, ids, _block):
        self.reads += 1
        if any(m not in self.by_market for m in ids):
            raise ContractLogicError("execution reverted", data="0x12345678")  # no such market
        return {m: self.by_market[m] for m in ids if m in self.by_market}


def gate_for(sender, *, eth_price=None, market_names=None, books=None):
    events: list[tuple[str, dict]] = []

    class Gate(FeeGate):
        def _event(self, _level, event, **fields):
            events.append((event, fields))

    gate = Gate()
    gate.sender = sender
    gate.eth_price = eth_price
    gate.market_names = market_names or {}
    gate.books = books or FakeBooks({})
    gate._eth_warned = False
    gate._read_eth_price(100)
    return gate, events


def test_gas_cost_in_quote_units_and_the_comparison():
    # 200,000 gas at 50 gwei = 0.01 ETH; at 2,000 per ETH, 20 in the quote token.
    assert gas_cost(200_000, 50 * GWEI, 2000 * WAD) == 20 * WAD
    assert gas_cost(1, 1, 1) == 1  # rounded up
    assert profitable(20 * WAD, 20 * WAD) and not profitable(20 * WAD - 1, 20 * WAD)


def test_action_rewards_are_the_engines_keeper_reward():
    t = {0: terms(0, 2000 * WAD), 1: terms(1, 30_000 * WAD, cap=5 * WAD)}
    a = Book("0xa", 0, 0, {0: (WAD, 0)})  # 1 ETH: K = 1 % of 2,000 = 20
    b = Book("0xb", 0, 0, {0: (-2 * WAD, 0), 1: (WAD // 10, 0)})  # 40 + min(30, ...) capped at Σcap
    assert whole_reward(a, t) == 20 * WAD
    books = {"0xa": a, "0xb": b}
    batch = Batch(("0xa", "0xb"), 0, (1, 2))
    assert action_reward(batch, books, t) == 20 * WAD + whole_reward(b, t)
    step = PartialStep("0xb", 1, WAD // 100)  # 0.01 BTC = 300: K = 3 (under the cap of 5)
    assert action_reward(step, books, t) == step_reward(t[1], WAD // 100) == 3 * WAD


def test_an_unprofitable_action_is_counted_and_not_sent():
    eth = FakeEth(base_fee=40 * GWEI)  # 2·40 + 1 = 81 gwei, capped at 50
    sender, _ = make_sender(eth, max_fee=50 * GWEI, priority_fee=GWEI)
    gate, events = gate_for(sender, market_names={3: "ETH"}, books=FakeBooks({3: terms(3, 2000 * WAD)}))
    report = PassReport()
    # 200,000 gas at the capped 50 gwei and 2,000 per ETH: 20. A reward of 20 − 1 wei is short.
    assert gate._fee_gate(200_000, 20 * WAD - 1, ("0xa", "0xb"), "0xa,0xb", report) is None
    assert (report.unprofitable, report.failed) == (2, 0)
    assert events == [
        (
            "unprofitable",
            {
                "accounts": "0xa,0xb",
                "reward": "20.000000",
                "gas_cost": "20.000000",
                "gas": 200_000,
                "max_fee_gwei": "50",
            },
        )
    ]
    assert gate._fee_gate(200_000, 20 * WAD, ("0xa",), "0xa", report) == (50 * GWEI, GWEI)
    assert report.unprofitable == 2
    assert "unprofitable" in COUNTER_NAMES
    assert eth.sent == []


def test_without_an_eth_price_there_is_no_floor_and_one_warning():
    eth = FakeEth(base_fee=GWEI)
    sender, _ = make_sender(eth)
    gate, events = gate_for(sender, market_names={0: "BTC"})
    gate._read_eth_price(101)
    report = PassReport()
    assert gate._fee_gate(10**9, 0, ("0xa",), "0xa", report) == (5 * GWEI, 3 * GWEI)
    assert report.unprofitable == 0
    assert events == [("no_eth_price", {"reason": "no market named ETH", "floor": "off"})]
    # A named market the engine does not list: no floor either, the keeper goes on.
    gate, events = gate_for(sender, market_names={9: "ETH"}, books=FakeBooks({}))
    assert gate._pass_eth_price is None
    assert events == [("no_eth_price", {"reason": "the ETH market's price is unreadable", "floor": "off"})]
    # The setting wins over the market's price, and needs no read.
    books = FakeBooks({3: terms(3, 2000 * WAD)})
    gate, _ = gate_for(sender, eth_price=WAD, market_names={3: "ETH"}, books=books)
    assert (gate._pass_eth_price, books.reads) == (WAD, 0)

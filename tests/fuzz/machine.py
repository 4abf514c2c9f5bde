"""The stateful differential fuzz machine: the whole protocol against ``backstop/model.py``.

One :class:`BackstopMachine` (a hypothesis ``RuleBasedStateMachine``) drives a deployed suite
(:class:`tests.fuzz.world.World`, on any :class:`backstop.evm.Backend`) and the reference model in
lockstep. Every rule is one protocol action — deposits, withdrawals (valid and not), signed trades
of random sizes and prices inside and outside the band (with expired, cancelled, mis-signed,
over-filled and nonce-invalidated orders), partial fills of resting orders, price moves including
crashes and spikes, stale and boundary-age oracles, time, liquidations by random accounts and by a
keeper, ``settle``, insurance-fund stake / request / redeem / withdraw, donations and pauses.

Each action goes to the model first. If the model raises :class:`ModelRevert`, the same call must
revert on chain with the custom error of that name (simulated, so nothing changes); otherwise the
transaction must succeed, and its return values and events must equal the model's. After every
step :meth:`BackstopMachine.check` reads the chain through ``BackstopLens`` in one call and compares
every observable with the model, exactly. Assertion messages start with the invariant IDs of
``docs/invariants.md``.

Rules are declared with :func:`action`, which records integer parameter ranges and a weight once
and derives both the hypothesis strategies (CI profile) and the seeded draws of the deep driver
(``tests/fuzz/driver.py``): one machine, two drivers, any backend.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from backstop.chain.evm import Ok, Revert
from backstop.decisions import plan_liquidations
from backstop.model import MAX_VALUE, MarketParams, ModelRevert, mul_wad_down, mul_wad_up
from backstop.orders import FAR_EXPIRY, SECP256K1_N, Order
from backstop.units import WAD
from tests.fuzz.world import (
    ALL_PARTS,
    DEPLOYER,
    FEED_UNIT,
    KEEPER,
    MARKETS,
    N_ACTORS,
    PART_ACCOUNT_DETAIL,
    PART_PRICES,
    PART_SYSTEM_DETAIL,
    Calls,
    Signed,
    Snapshot,
    World,
    addr_word,
    decode_snapshot,
    encode_snapshot_words,
    liquidated_event,
    snapshot_words,
    word,
)

# --- rule declarations: one spec, two drivers ------------------------------------------------------


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
    """``(name, weight, params)`` of every declared action, in definition order."""
    out = []
    for klass in reversed(cls.__mro__):
        for name, fn in vars(klass).items():
            spec = getattr(fn, ACTION_ATTR, None)
            if spec is not None:
                out.append((name, spec[0], spec[1]))
    return out


# --- invariants ------------------------------------------------------------------------------------


class InvariantViolation(AssertionError):
    """A failed comparison; ``inv`` is the invariant ID of docs/invariants.md."""

    def __init__(self, inv: str, detail: str) -> None:
        super().__init__(f"{inv}: {detail}")
        self.inv = inv


def fail(inv: str, detail: str) -> None:
    raise InvariantViolation(inv, detail)


def expect(ok: bool, inv: str, detail: Callable[[], str]) -> None:
    if not ok:
        raise InvariantViolation(inv, detail())


# --- parameters of the generated actions -----------------------------------------------------------

#: Price moves in basis points: crashes and spikes, and the mid-size moves that take a position
#: opened near its initial margin to just under maintenance (where the insurance fee is capped by
#: the equity left) rather than straight to bankruptcy.
MOVES_BPS = (
    -9_000,
    -6_000,
    -4_500,
    -2_500,
    -1_800,
    -1_400,
    -1_100,
    -900,
    -800,
    -700,
    -600,
    -300,
    -100,
    -20,
    20,
    100,
    300,
    600,
    700,
    800,
    900,
    1_100,
    1_400,
    1_800,
    2_500,
    6_000,
    15_000,
)
#: Time steps in seconds: around every heartbeat (1,800 / 3,600 / 7,200 s), the fund's cooldown
#: (3 h) and window (1 h), their edges, and whole days.
TIME_STEPS = (
    1,
    13,
    600,
    1_799,
    1_800,
    1_801,
    3_600,
    3_601,
    7_201,
    10_799,
    10_800,
    10_801,
    12_000,
    14_401,
    86_400,
)
BOOK_LIMIT = 48
TIP_TARGETS = ("edge", "safe", "fee", "bankrupt")


def _with(**changes: int) -> Callable[[MarketParams], MarketParams]:
    return lambda p: MarketParams(**{**p.__dict__, **changes})


def _scaled(num: int, den: int) -> Callable[[MarketParams], MarketParams]:
    """Every ratio scaled by ``num/den`` (bounds permitting), the cap unchanged."""

    def scale(p: MarketParams) -> MarketParams:
        ratios = {k: v * num // den for k, v in p.__dict__.items() if k != "oi_cap"}
        ratios["im_ratio"] = min(ratios["im_ratio"], WAD)
        return MarketParams(**ratios, oi_cap=p.oi_cap)

    return scale


#: Parameter changes the admin may try: valid ones, then ones outside the hard bounds.
PARAM_VARIANTS: tuple[Callable[[MarketParams], MarketParams], ...] = (
    lambda p: p,  # back to the listing values
    _scaled(3, 2),  # tighter requirements, higher fees, wider band
    _scaled(2, 3),  # looser
    _with(maker_fee_ratio=0, taker_fee_ratio=0),
    _with(oi_cap=1),  # existing open interest above the cap: only reductions trade
    lambda p: MarketParams(**{**p.__dict__, "im_ratio": p.mm_ratio}),  # im = mm: invalid
    lambda p: MarketParams(**{**p.__dict__, "keeper_reward_ratio": p.mm_ratio}),  # reward = mm: invalid
    _with(price_band_ratio=0),  # invalid
    _with(oi_cap=0),  # invalid
)
ACTOR = R(0, N_ACTORS - 1)
MARKET = R(0, len(MARKETS) - 1)


class BackstopMachine(RuleBasedStateMachine):
    """Protocol actions against the chain and the model; :meth:`check` after every step.

    Configure before use: ``BackstopMachine.world`` (a :class:`World`) and ``full_every`` (1: the
    whole snapshot every step; ``k > 1``: after every step that changed anything, the system, every
    market and every account's core figures, plus the optional lens parts the step may have
    changed; the whole snapshot every ``k`` steps and at the end of a run). See :meth:`compare`.
    """

    world: ClassVar[World | None] = None
    full_every: ClassVar[int] = 1
    #: Steps executed by every instance of this class (the throughput counter).
    steps_total: ClassVar[int] = 0
    #: Outcomes by action: ``"trade:ok"``, ``"trade:PriceOutsideBand"``, ``"liquidate:socialized"``...
    outcomes: ClassVar[Counter[str]] = Counter()

    def __init__(self) -> None:
        super().__init__()
        w = type(self).world
        assert w is not None, "BackstopMachine.world is not configured"
        self.w = w
        self.b = w.backend
        self.model = w.reset()
        self.now = self.b.now
        self.model.now = self.now
        self.addr = w.addresses
        self.keys = [a.lower() for a in self.addr]  # the model's account keys
        self.prices = [m.price for m in MARKETS]
        self.updated = [w.genesis_time] * len(MARKETS)
        self.stale = [False] * len(MARKETS)
        self.paused = [False] * len(MARKETS)
        self.global_paused = False
        self.book: list[Signed] = []
        self.nonces = [0] * N_ACTORS
        self.wallets = list(w.genesis_wallets)
        self.dust_bound = 0
        self.steps = 0
        self.program: list[tuple[str, dict[str, Any]]] = []
        self.need = ALL_PARTS  # optional lens parts the next (non-full) check must read
        self.changed = True  # whether anything changed since the last comparison
        self.step_changed = False  # whether the current step changed anything
        self.liquidated: tuple[int, int] | None = None  # (actor, deficit) of the last liquidation
        self.price_min = [m.price // 1_000 for m in MARKETS]
        self.price_max = [m.price * 1_000 for m in MARKETS]

    # --- the one hypothesis rule ------------------------------------------------------------------

    @rule(
        action=st.deferred(lambda: st.sampled_from(weighted_action_names(BackstopMachine))),
        data=st.data(),
    )
    def step(self, action: str, data: st.DataObject) -> None:
        """One protocol action, picked by weight, with its parameters drawn from its declaration.
        (One rule rather than one per action: hypothesis would otherwise switch random subsets of
        actions off per example, and a liquidation needs trades, price moves and a keeper.)"""
        params = _PARAMS[action]
        self.do(action, {name: data.draw(p.strategy(), label=name) for name, p in params.items()})

    def do(self, action: str, kwargs: dict[str, Any]) -> None:
        """Runs one action and records it in :attr:`program` (what a failure report replays)."""
        self.program.append((action, kwargs))
        try:
            getattr(self, action)(**kwargs)
        except Exception as err:
            self._annotate(err)
            raise

    def _annotate(self, err: BaseException) -> None:
        if not getattr(err, "_fuzz_annotated", False):
            err._fuzz_annotated = True  # type: ignore[attr-defined]
            err.fuzz_program = list(self.program)  # type: ignore[attr-defined]
            lines = ",\n".join(f"    ({name!r}, {kwargs!r})" for name, kwargs in self.program)
            err.add_note(f"replay with tests.fuzz.machine.replay(world, [\n{lines},\n])")

    # --- lockstep execution -------------------------------------------------------------------

    def _sync(self) -> None:
        """Model clock and oracle staleness follow the chain's block time and feed ages."""
        self.model.now = self.now
        for m, cfg in enumerate(MARKETS):
            stale = self.now - self.updated[m] > cfg.heartbeat
            if stale != self.stale[m]:
                self.stale[m] = stale
                self.model.set_stale(m, stale)
                self.need |= PART_PRICES
                self.changed = True

    def _run(
        self, label: str, model_call: Callable[[], Any], sender: str, to: str, data: bytes
    ) -> tuple[Ok | None, Any]:
        """Model first; then the chain must agree: ``(outcome, model value)`` if both accept,
        ``(None, ModelRevert)`` if both reject with the same custom error."""
        self._sync()
        kind = label.split("(", 1)[0]
        try:
            value = model_call()
        except ModelRevert as err:
            expected = err
        else:
            expected = None
        if expected is not None:
            type(self).outcomes[f"{kind}:{expected.name}"] += 1
            out = self.b.call(sender, to, data)
            if not isinstance(out, Revert):
                fail("INV-REVERT-MATCH", f"{label}: model reverts {expected}, chain accepts")
            if out.selector != self.w.errors.get(expected.name):
                fail(
                    "INV-REVERT-MATCH",
                    f"{label}: model reverts {expected}, chain reverts {self.w.describe_revert(out.data)}",
                )
            return None, expected
        type(self).outcomes[f"{kind}:ok"] += 1
        self.step_changed = True
        out = self.b.transact(sender, to, data)
        if isinstance(out, Revert):
            fail(
                "INV-REVERT-MATCH",
                f"{label}: model accepts, chain reverts {self.w.describe_revert(out.data)}",
            )
        return out, value

    def _admin(self, to: str, data: bytes) -> None:
        """A call that must succeed (oracle and guardian operations)."""
        self.step_changed = True
        out = self.b.transact(DEPLOYER, to, data)
        if isinstance(out, Revert):
            fail("INV-REVERT-MATCH", f"admin call reverted: {self.w.describe_revert(out.data)}")

    def _step(self, need: int = 0) -> None:
        """Ends a rule: counts it and, if it changed anything, marks that the next check must
        compare and which optional lens parts (``need``) it must read. A step that changed nothing
        (its transaction reverted on both sides, or it had nothing to do) leaves both states as
        they were — a reverted transaction changes no EVM state, a model method that raises
        restores its state — so there is nothing new to compare."""
        self.steps += 1
        type(self).steps_total += 1
        if self.step_changed:
            self.need |= need
            self.changed = True
            self.step_changed = False

    # --- helpers -------------------------------------------------------------------------------

    def _free(self, i: int) -> int:
        """The model's free collateral of actor ``i`` (its margin if a price is unusable)."""
        try:
            return self.model.free_collateral(self.addr[i])
        except ModelRevert:
            return self.model.margin(self.addr[i])

    def _next_nonce(self, i: int) -> int:
        nonce = max(self.nonces[i], self.model.min_nonce(self.addr[i]))
        self.nonces[i] = nonce + 1
        return nonce

    def _signed(self, i: int, o: Order, signer: int | None = None) -> Signed:
        return self.w.sign(i, o, signer)

    def _match(self, label: str, maker: Signed, taker: Signed, fill: int, sender: int) -> None:
        maker_ok = self._signature_ok(maker)
        taker_ok = self._signature_ok(taker)
        data = Calls.match(maker.order, maker.signature, taker.order, taker.signature, fill)
        out, _ = self._run(
            label,
            lambda: self.model.match(maker.order, maker_ok, taker.order, taker_ok, fill),
            self.addr[sender],
            self.w.engine,
            data,
        )
        if out is not None:
            self.dust_bound += 3  # one wei per party per rounding of the fill's cost, flips included

    @staticmethod
    def _signature_ok(s: Signed) -> bool:
        """Whether the signature recovers the order's account (what the engine accepts)."""
        return s.valid

    # --- vault ---------------------------------------------------------------------------------

    @action(weight=3, who=ACTOR, kind=R(0, 3), amount=R(1, 1_000_000))
    def deposit(self, who: int, kind: int, amount: int) -> None:
        unit = self.w.token_unit  # dust, up to 1,000 tokens, up to 10,000 tokens, zero
        tokens = (amount % 10_000 + 1, amount * unit // 1_000, amount * unit // 100, 0)[kind]
        a = self.addr[who]
        out, _ = self._run(
            f"deposit({who}, {tokens})",
            lambda: self.model.deposit(a, tokens),
            a,
            self.w.vault,
            Calls.DEPOSIT + word(tokens),
        )
        if out is not None:
            self.wallets[who] -= tokens
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=4, who=ACTOR, mode=R(0, 5), pct=R(1, 100))
    def withdraw(self, who: int, mode: int, pct: int) -> None:
        a = self.addr[who]
        margin = self.model.margin(a)
        free = max(self._free(who), 0) // self.w.scale
        whole = max(margin, 0) // self.w.scale
        tokens = (free, free + 1, free * pct // 100, whole, 0, whole + 1)[mode]
        if mode != 4:
            tokens = max(tokens, 1)
        flat = not self.model.markets_of(a) and self.model.pending_loss(a) == 0
        in_vault = self.model.vault_tokens
        out, result = self._run(
            f"withdraw({who}, {tokens})",
            lambda: self.model.withdraw(a, tokens),
            a,
            self.w.vault,
            Calls.WITHDRAW + word(tokens),
        )
        if flat and mode == 3 and 0 < tokens <= min(whole, in_vault):
            # DESIGN §7: a flat account can always take out its whole positive margin, as far as
            # the vault holds the tokens (realized profit is paid out of the losers' margin: until
            # a bankrupt loser is liquidated the vault may hold less, and the token refuses).
            expect(
                out is not None,
                "INV-FLAT-WITHDRAW",
                lambda: f"flat actor {who} could not withdraw its margin {tokens}: {result}",
            )
        if out is not None:
            self.wallets[who] += tokens
        self._step(need=PART_ACCOUNT_DETAIL)

    # --- trading -------------------------------------------------------------------------------

    @action(
        weight=10,
        maker=ACTOR,
        taker=ACTOR,
        market=MARKET,
        maker_buys=R(0, 1),
        size_kind=C((0, 1, 2, 2, 2, 3, 4)),
        lev=C((10, 40, 70, 90, 100, 110, 130, 160)),
        band=R(-1_100, 1_100),
        fill=R(1, 100),
        twist=R(0, 59),
        keep=R(0, 5),
    )
    def trade(
        self,
        maker: int,
        taker: int,
        market: int,
        maker_buys: int,
        size_kind: int,
        lev: int,
        band: int,
        fill: int,
        twist: int,
        keep: int,
    ) -> None:
        """Two fresh signed orders, matched; ``twist`` makes one check fail on purpose."""
        if taker == maker and twist % 4:
            taker = (taker + 1) % N_ACTORS  # a self-trade now and then, not one trade in seven
        params = self.model.markets[market].params
        oracle = self.prices[market]
        band_abs = mul_wad_down(oracle, params.price_band_ratio)
        price = max(oracle + band_abs * band // 1_000, 1)
        if size_kind == 0:
            size = lev  # a few wei of size: the rounding rules at their finest
        elif size_kind == 1:
            size = lev * WAD // 100
        else:
            budgets = {
                2: min(self._free(maker), self._free(taker)),
                3: self._free(maker),
                4: self._free(taker),
            }
            budget = max(budgets[size_kind], 10 * WAD)
            size = max(budget * lev // 100 * WAD // max(mul_wad_up(price, params.im_ratio), 1), 1)
        q = max(size * fill // 100, 1)
        if twist == 15:
            q = size = MAX_VALUE + 1  # beyond the 128-bit position storage: ValueOutOfRange
        elif twist == 16:
            price = MAX_VALUE + 1  # a limit price beyond it: ValueOutOfRange after the limit check
        is_buy = bool(maker_buys)
        expiry = self.now + 600 if keep == 4 else FAR_EXPIRY
        if twist == 4:
            expiry = self.now - 1
        elif twist == 11:
            expiry = self.now  # inclusive bound: still valid
        mo = Order(self.addr[maker], market, is_buy, size, price, self._next_nonce(maker), expiry)
        signer = (maker + 1) % N_ACTORS if twist == 2 else None
        ms = self._signed(maker, mo, signer)
        if twist == 8:
            ms = _high_s(ms)
        elif twist == 12:
            ms = _truncated(ms)

        t_market = (market + 1) % len(MARKETS) if twist == 6 else market
        t_buy = is_buy if twist == 0 else not is_buy
        t_limit = price
        if twist == 1 and price > 1:
            t_limit = price - 1 if t_buy else price + 1
        elif twist in (13, 14):
            t_limit = price + band_abs if t_buy else max(price - band_abs, 0)
        t_nonce = self._next_nonce(taker)
        if twist == 9 and self.model.min_nonce(self.addr[taker]) > 0:
            t_nonce = self.model.min_nonce(self.addr[taker]) - 1
        if twist == 7:
            q = 0
        elif twist == 10:
            q = size + 1
        t_expiry = self.now - 1 if twist == 5 else FAR_EXPIRY
        to = Order(self.addr[taker], t_market, t_buy, max(q, 1), t_limit, t_nonce, t_expiry)
        ts = self._signed(taker, to, (taker + 2) % N_ACTORS if twist == 3 else None)
        # Orders beyond the 128-bit range are kept too: their partial fills take positions past
        # 2^127, where both sides refuse with ValueOutOfRange (test_regressions.py).
        if 1 <= keep <= 4 and twist not in (2, 8, 12):
            self.book.append(ms)
            if len(self.book) > BOOK_LIMIT:
                self.book.pop(0)
        self._match(f"trade(m{market} {maker}->{taker} q={q} p={price} twist={twist})", ms, ts, q, taker)
        self._step()

    @action(weight=4, idx=R(0, BOOK_LIMIT - 1), taker=ACTOR, pct=R(1, 130), sender=ACTOR)
    def fill_resting(self, idx: int, taker: int, pct: int, sender: int) -> None:
        """A taker fills part (or more than the rest) of a resting order from the book."""
        if not self.book:
            self._step()
            return
        ms = self.book[idx % len(self.book)]
        mo = ms.order
        if taker == ms.owner and pct % 4:
            taker = (taker + 1) % N_ACTORS  # a self-trade now and then, not one fill in seven
        remaining = mo.size - self.model.filled_amount(mo)
        q = max(remaining * pct // 100, 1) if pct <= 100 else remaining + 1 + pct
        to = Order(
            self.addr[taker],
            mo.market_id,
            not mo.is_buy,
            q,
            mo.limit_price,
            self._next_nonce(taker),
            FAR_EXPIRY,
        )
        self._match(f"fill_resting({idx}, taker {taker}, q={q})", ms, self._signed(taker, to), q, sender)
        self._step()

    @action(weight=1, idx=R(0, BOOK_LIMIT - 1), who=R(0, N_ACTORS))
    def cancel(self, idx: int, who: int) -> None:
        """Cancels a resting order's hash, by its owner (``who == N_ACTORS``) or by anyone."""
        if not self.book:
            self._step()
            return
        ms = self.book[idx % len(self.book)]
        canceller = ms.owner if who == N_ACTORS else who
        a = self.addr[canceller]
        self._run(
            f"cancel({idx}) by {canceller}",
            lambda: self.model.cancel(a, ms.order),
            a,
            self.w.engine,
            Calls.CANCEL + word(32) + word(1) + ms.digest,
        )
        self._step()

    @action(weight=1, who=ACTOR, bump=R(0, 3))
    def raise_nonce(self, who: int, bump: int) -> None:
        a = self.addr[who]
        nonce = self.model.min_nonce(a) + bump
        self._run(
            f"raiseMinNonce({who}, {nonce})",
            lambda: self.model.set_min_nonce(a, nonce),
            a,
            self.w.engine,
            Calls.RAISE_NONCE + word(nonce),
        )
        self._step(need=PART_ACCOUNT_DETAIL)

    # --- oracle and time -----------------------------------------------------------------------

    def _risky_market(self, market: int) -> int:
        """``market`` if it is a market id; above that, the market with the most open notional
        (prices are moved where the risk is)."""
        if market < len(MARKETS):
            return market
        return max(range(len(MARKETS)), key=lambda m: (self.model.open_interest(m) * self.prices[m], -m))

    @action(weight=5, market=R(0, 2 * len(MARKETS) - 1), move=C(MOVES_BPS))
    def move_price(self, market: int, move: int) -> None:
        """A fresh oracle answer ``move`` basis points away (crashes, spikes), on the feed grid."""
        market = self._risky_market(market)
        old = self.prices[market]
        if (move < 0 and old <= self.price_min[market]) or (move > 0 and old >= self.price_max[market]):
            move = -move
        self._set_price(market, max(old * (10_000 + move) // 10_000 // FEED_UNIT * FEED_UNIT, FEED_UNIT))
        self._step(need=PART_PRICES)

    def _set_price(self, market: int, price: int) -> None:
        """A fresh feed answer (on the feed grid) on chain and in the model."""
        self._admin(self.w.feeds[market], Calls.SET_ANSWER + word(price // FEED_UNIT))
        self.model.set_price(market, price)
        self.prices[market] = price
        self.updated[market] = self.now

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pick=R(0, 7), target=C((*TIP_TARGETS, "fee")))
    def tip(self, who: int, pick: int, target: str) -> None:
        """Moves one market's price to where an account sits exactly at an edge (DESIGN §4):
        ``edge``, the first feed price at which ``E < MMR`` (liquidatable); ``safe``, the last at
        which ``E ≥ MMR`` (the bound is strict: not liquidatable); ``fee``, where the equity left
        after the keeper reward is half the insurance fee (the fee is capped by it); ``bankrupt``,
        where nothing is left after the reward. ``who`` above the actor range picks the account
        closest to liquidation."""
        i = who if who < N_ACTORS else self._most_leveraged()
        held = self.model.markets_of(self.addr[i]) if i is not None else []
        price = self._tip_price(i, held[pick % len(held)], target) if held else None
        if price is None:
            self._step()
            return
        market = held[pick % len(held)]
        self._set_price(market, price)
        self._step(need=PART_PRICES)

    def _most_leveraged(self) -> int | None:
        best = None
        for i, a in enumerate(self.addr):
            if not self.model.markets_of(a):
                continue
            try:
                h = self.model.health(a)
            except ModelRevert:
                continue
            key = ((h.equity - h.mmr) * WAD // max(h.mmr, 1), i)
            best = min(best, key) if best else key
        return best[1] if best else None

    def _tip_price(self, i: int, market: int, target: str) -> int | None:
        """The feed price of ``market`` that puts actor ``i`` at ``target`` (see :meth:`tip`),
        found by bisection over the feed grid with the model's own valuation."""
        a = self.addr[i]
        size = self.model.position(a, market)[0]
        params = self.model.markets[market].params
        probe = self.model.copy()

        def gap(units: int) -> int | None:
            price = units * FEED_UNIT
            probe.markets[market].price = price
            try:
                h = probe.health(a)
            except ModelRevert:
                return None
            notional = mul_wad_up(abs(size), price)
            reward = mul_wad_down(notional, params.keeper_reward_ratio)
            fee = mul_wad_down(notional, params.insurance_fee_ratio)
            return {
                "edge": h.equity - h.mmr,
                "safe": h.equity - h.mmr,
                "fee": h.equity - reward - fee // 2,
                "bankrupt": h.equity - reward,
            }[target]

        # The gap grows with the price for a long and falls for a short: find the first grid
        # price on the side where it is non-negative.
        lo, hi = 1, self.price_max[market] // FEED_UNIT
        g_lo, g_hi = gap(lo), gap(hi)
        if g_lo is None or g_hi is None or (g_lo >= 0) == (g_hi >= 0):
            return None
        rising = size > 0
        while hi - lo > 1:
            mid = (lo + hi) // 2
            g = gap(mid)
            if g is None:
                return None
            if (g >= 0) == rising:
                hi = mid
            else:
                lo = mid
        # ``hi`` is on the non-negative side for a long, ``lo`` for a short.
        safe, under = (hi, lo) if rising else (lo, hi)
        return (safe if target == "safe" else under) * FEED_UNIT

    @action(weight=1, market=MARKET, mode=R(0, 3))
    def feed_age(self, market: int, mode: int) -> None:
        """Re-dates a feed: stale (heartbeat + 1 old), exactly heartbeat old (still fresh), one
        second younger, or fresh."""
        hb = MARKETS[market].heartbeat
        answer = self.prices[market] // FEED_UNIT
        if mode == 3:
            self._admin(self.w.feeds[market], Calls.SET_ANSWER + word(answer))
            self.updated[market] = self.now
        else:
            at = self.now - hb - (1, 0, -1)[mode]
            self._admin(self.w.feeds[market], Calls.SET_ANSWER_AT + word(answer) + word(at) + word(at))
            self.updated[market] = at
        self._step(need=PART_PRICES)

    @action(weight=2, kind=R(0, len(TIME_STEPS) - 1), refresh=C((0, 1, 1, 1, 1, 1)))
    def advance_time(self, kind: int, refresh: int) -> None:
        """Time passes; usually the oracle keepers then refresh every feed at its price."""
        self._advance(TIME_STEPS[kind], bool(refresh))
        self._step(need=PART_PRICES)

    @action(weight=3, offset=C((-1, 0, 1, 1_800, 3_599, 3_600, 3_601)), refresh=C((0, 1, 1, 1)))
    def wait_for_exit(self, offset: int, refresh: int) -> None:
        """Time passes until the earliest pending fund exit request matures, ``offset`` seconds
        around its window (before it, at its edges, inside, just after it)."""
        pending = [r[2] for a in self.addr if (r := self.model.withdraw_request(a))]
        target = min(pending) + self.model.cooldown + offset if pending else self.now
        self._advance(max(target - self.now, 0), bool(refresh))
        self._step(need=PART_PRICES)

    def _advance(self, seconds: int, refresh: bool) -> None:
        self.step_changed = self.step_changed or seconds > 0
        self.now += seconds
        self.b.set_timestamp(self.now)
        if refresh:
            for m in range(len(MARKETS)):
                self._admin(self.w.feeds[m], Calls.SET_ANSWER + word(self.prices[m] // FEED_UNIT))
                self.updated[m] = self.now

    # --- liquidation and settlement ------------------------------------------------------------

    def _liquidate(self, liquidator: int, target: int) -> None:
        t, lq = self.addr[target], self.addr[liquidator]
        taken = len(self.model.markets_of(t))
        out, result = self._run(
            f"liquidate({target}) by {liquidator}",
            lambda: self.model.liquidate(t, lq),
            lq,
            self.w.engine,
            Calls.LIQUIDATE + addr_word(t),
        )
        if out is not None:
            event = liquidated_event(out.logs, self.w.engine)
            expected = {
                k: result[k]
                for k in ("notional", "keeper_reward", "insurance_fee", "deficit", "covered", "socialized")
            }
            expect(
                event == expected,
                "INV-LIQ-EVENT",
                lambda: f"Liquidated event {event}, model {expected}",
            )
            self.liquidated = (target, result["deficit"])
            for key in ("deficit", "covered", "socialized", "insurance_fee"):
                if result[key]:
                    type(self).outcomes[f"liquidate:{key}"] += 1
            self.dust_bound += 2 * taken + self.w.scale
        self._step()

    @action(weight=2, liquidator=ACTOR, account=ACTOR)
    def liquidate(self, liquidator: int, account: int) -> None:
        """Anyone liquidates anyone: healthy accounts, self-liquidation and poor liquidators must
        be refused exactly as the model says."""
        self._liquidate(liquidator, account)

    @action(weight=6, who=R(0, 9))
    def keeper(self, who: int) -> None:
        """The keeper's first choice (DESIGN §4, ``backstop.decisions.plan_liquidations``): the most
        negative ``E − MMR`` first, ties by address."""
        liquidator = KEEPER if who >= 3 else who
        plan = plan_liquidations(self.model.health_snapshot(self.addr), self.addr[liquidator])
        if not plan.targets:
            type(self).outcomes["keeper:idle"] += 1
            self._step()
            return
        self._liquidate(liquidator, self.addr.index(plan.targets[0]))

    @action(weight=2, sender=ACTOR, account=ACTOR)
    def settle(self, sender: int, account: int) -> None:
        t = self.addr[account]
        self._run(
            f"settle({account}) by {sender}",
            lambda: self.model.settle(t),
            self.addr[sender],
            self.w.engine,
            Calls.SETTLE + addr_word(t),
        )
        self._step()

    # --- insurance fund ------------------------------------------------------------------------

    @action(weight=2, who=ACTOR, kind=R(0, 2), amount=R(0, 1_000_000))
    def stake(self, who: int, kind: int, amount: int) -> None:
        tokens = (amount, amount * self.w.token_unit // 1_000, 0)[kind]
        a = self.addr[who]
        out, shares = self._run(
            f"stake({who}, {tokens})",
            lambda: self.model.stake(a, tokens),
            a,
            self.w.fund,
            Calls.STAKE + word(tokens) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else shares
            expect(got == shares, "INV-FUND-SHARES", lambda: f"stake minted {got} shares, model {shares}")
            self.wallets[who] -= tokens
        self._step(need=PART_ACCOUNT_DETAIL)

    def _staker(self, who: int) -> int:
        """``who`` if it is an actor index; above that, an actor holding fund shares."""
        if who < N_ACTORS:
            return who
        holders = [i for i, a in enumerate(self.addr) if self.model.fund_shares(a)]
        return holders[who % len(holders)] if holders else who % N_ACTORS

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(0, 120))
    def request_unstake(self, who: int, pct: int) -> None:
        who = self._staker(who)
        a = self.addr[who]
        shares = self.model.fund_shares(a) * pct // 100
        self._run(
            f"requestWithdraw({who}, {shares})",
            lambda: self.model.request_unstake(a, shares),
            a,
            self.w.fund,
            Calls.REQUEST + word(shares),
        )
        self._step(need=PART_ACCOUNT_DETAIL)

    def _requester(self, who: int) -> int:
        """``who`` if it is an actor index; above that, an actor with a pending exit request."""
        if who < N_ACTORS:
            return who
        pending = [i for i, a in enumerate(self.addr) if self.model.withdraw_request(a)]
        return pending[who % len(pending)] if pending else who % N_ACTORS

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(1, 120))
    def unstake(self, who: int, pct: int) -> None:
        who = self._requester(who)
        a = self.addr[who]
        req = self.model.withdraw_request(a)
        base = req[0] if req else self.model.fund_shares(a)
        shares = max(base * pct // 100, 1)
        out, paid = self._run(
            f"redeem({who}, {shares})",
            lambda: self.model.unstake(a, shares),
            a,
            self.w.fund,
            Calls.REDEEM + word(shares) + addr_word(a) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else paid
            expect(got == paid, "INV-FUND-EXIT", lambda: f"redeem paid {got}, model {paid}")
            self.wallets[who] += paid
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=3, who=R(0, 2 * N_ACTORS - 1), pct=R(0, 120))
    def fund_withdraw(self, who: int, pct: int) -> None:
        who = self._requester(who)
        a = self.addr[who]
        req = self.model.withdraw_request(a)
        most = min(self.model.convert_to_assets(req[0]), req[1]) if req else 10 * self.w.token_unit
        assets = most * pct // 100
        out, shares = self._run(
            f"fund.withdraw({who}, {assets})",
            lambda: self.model.fund_withdraw(a, assets),
            a,
            self.w.fund,
            Calls.FUND_WITHDRAW + word(assets) + addr_word(a) + addr_word(a),
        )
        if out is not None:
            got = int.from_bytes(out.output[:32], "big") if out.output else shares
            expect(got == shares, "INV-FUND-EXIT", lambda: f"withdraw burned {got} shares, model {shares}")
            self.wallets[who] += assets
        self._step(need=PART_ACCOUNT_DETAIL)

    @action(weight=1, who=ACTOR, amount=R(1, 10**9))
    def donate(self, who: int, amount: int) -> None:
        """A plain token transfer to the fund (up to 1,000 tokens): raises the share price."""
        amount = max(amount * self.w.token_unit // 10**6, 1)
        a = self.addr[who]
        self._run(
            f"donate({who}, {amount})",
            lambda: self.model.donate_to_fund(amount),
            a,
            self.w.token,
            Calls.TRANSFER + addr_word(self.w.fund) + word(amount),
        )
        self.wallets[who] -= amount
        self._step(need=PART_ACCOUNT_DETAIL | PART_SYSTEM_DETAIL)

    # --- admin ---------------------------------------------------------------------------------

    @action(weight=1, market=MARKET, variant=R(0, len(PARAM_VARIANTS) - 1))
    def update_market(self, market: int, variant: int) -> None:
        """The admin changes a market's risk and fee parameters (same feed and heartbeat): back to
        its listing values, tighter or looser requirements, other fees and caps, or values outside
        the hard bounds (``InvalidMarketParam``). Requirements change at once for every holder."""
        params = PARAM_VARIANTS[variant](MARKETS[market].params)
        cfg = MARKETS[market]
        data = Calls.UPDATE_MARKET + word(market) + addr_word(self.w.feeds[market]) + word(cfg.heartbeat)
        data += b"".join(
            word(x)
            for x in (
                params.im_ratio,
                params.mm_ratio,
                params.keeper_reward_ratio,
                params.insurance_fee_ratio,
                params.price_band_ratio,
                params.maker_fee_ratio,
                params.taker_fee_ratio,
                params.oi_cap,
            )
        )
        self._run(
            f"updateMarket({market}, variant {variant})",
            lambda: self.model.set_params(market, params),
            DEPLOYER,
            self.w.engine,
            data,
        )
        self._step()

    # --- guardian ------------------------------------------------------------------------------

    @action(weight=2, kind=R(0, 11), market=MARKET)
    def pause(self, kind: int, market: int) -> None:
        """Pauses a market (kind 0) or all trading (1), or resumes everything (2-11), so pauses
        are episodes rather than the norm. Liquidation, settlement and withdrawals go on."""
        if kind == 0:
            self._admin(self.w.engine, Calls.PAUSE_MARKET + word(market) + word(1))
            self.model.set_paused(market, True)
            self.paused[market] = True
        elif kind == 1:
            self._admin(self.w.engine, Calls.PAUSE_GLOBAL + word(1))
            self.model.set_global_paused(True)
            self.global_paused = True
        else:
            for m in range(len(MARKETS)):
                if self.paused[m]:
                    self._admin(self.w.engine, Calls.PAUSE_MARKET + word(m) + word(0))
                    self.model.set_paused(m, False)
                    self.paused[m] = False
            if self.global_paused:
                self._admin(self.w.engine, Calls.PAUSE_GLOBAL + word(0))
                self.model.set_global_paused(False)
                self.global_paused = False
        self._step(need=PART_PRICES)

    # --- the comparison ------------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        """Every observable of the chain equals the model's (docs/invariants.md).

        Skipped when neither side changed since the last comparison (and no full check is due):
        every step since reverted on both sides or did nothing, and a reverted transaction leaves
        the EVM state as it was while a model method that raises restores its own state, so the
        comparison would read and predict exactly what the last one did."""
        every = type(self).full_every
        full = every <= 1 or self.steps % every == 0
        self._sync()
        if not full and not self.changed:
            return
        try:
            self.compare(full)
        except Exception as err:
            self._annotate(err)
            raise

    def compare(self, full: bool = True) -> None:
        """Reads every actor through the lens in one call and compares it with the model and the
        machine: the system figures (solvency identity, fund assets and supply), every market's
        open interest and loss indices, every account's core figures (margin, market list,
        positions, pending loss, priced flag, equity, IMR, MMR, free collateral, fund shares), and
        the optional lens parts — prices and pause flags; exit requests, wallets and nonces; the
        components of the solvency identity — when a step since the last comparison may have
        changed them, and all of them on a full check (with the whole-system sums).

        Fast path: the model's prediction of the whole answer, encoded as the lens encodes it, is
        compared with the chain's bytes at once. Only if they differ is the answer decoded and
        compared field by field (the ``expect`` calls carrying the invariant IDs), so a failure
        reads exactly as if every field had been compared one by one."""
        self._sync()
        parts = ALL_PARTS if full else self.need
        output = self.w.lens_output(parts)
        expected = self._expected_words(parts, int.from_bytes(output[96:128], "big"))
        snap: Snapshot | None = None
        if output != encode_snapshot_words(expected):
            snap = decode_snapshot(output, N_ACTORS)
            self._compare_snapshot(snap)  # raises, with the invariant ID of the first difference
            self._unexplained_difference(output, expected)
        # One-sided checks; the chain's words are the expected ones from here on.
        dust = expected[5]
        expect(
            0 <= dust <= self.dust_bound,
            "INV-SOLVENCY-DUST",
            lambda: f"dust {dust} outside [0, {self.dust_bound}]",
        )
        if full or self.liquidated is not None:
            snap = snap or decode_snapshot(output, N_ACTORS)
            if full:
                self._compare_sums(snap)
            if self.liquidated is not None:
                target, deficit = self.liquidated
                acc = snap.accounts[target]
                expect(
                    acc.margin >= 0 and not acc.markets and (deficit == 0 or acc.margin == 0),
                    "INV-LIQ-MARGIN-ZERO",
                    lambda: f"liquidated actor {target}: margin {acc.margin}, markets {acc.markets}, deficit {deficit}",
                )
                self.liquidated = None
        self.need = 0
        self.changed = False

    def _expected_words(self, parts: int, block_number: int) -> list[int]:
        """What ``BackstopLens.snapshotWords(every actor, parts)`` must answer, word for word
        (layout in ``IBackstopLens``), by the model and the machine's own records (clock, prices,
        feed ages, pauses, wallets). Parts left out read as zeros. The block number, which
        neither tracks, is the chain's."""
        model = self.model
        solvency = model.solvency()
        system_detail = parts & PART_SYSTEM_DETAIL
        words = [parts, block_number, self.now, solvency["vault_assets"], solvency["liabilities"]]
        words.append(solvency["dust"])
        if system_detail:
            words += (
                model.total_margin(),
                model.net_open_notional(),
                model.unsettled_loss,
                model.vault_tokens,
                model.fund_tokens,
                model.fund_assets(),
                model.fund_supply(),
                model.coverable(),
            )
        else:
            words += (0, 0, 0, 0, 0, model.fund_assets(), model.fund_supply(), 0)
        n_markets = len(model.markets)
        words.append(n_markets)
        prices = parts & PART_PRICES
        for m, market in enumerate(model.markets):
            words += (market.open_interest[0], market.loss_index[0], market.loss_index[1])
            if prices:
                priced = not self.stale[m]
                paused = self.global_paused or self.paused[m]
                words += (int(paused), int(priced), self.prices[m] if priced else 0)
            else:
                words += (0, 0, 0)
        detail = parts & PART_ACCOUNT_DETAIL
        accounts = model.accounts
        for i, a in enumerate(self.addr):
            try:
                h = model.health(a)
            except ModelRevert:  # a market of the account has no usable price
                words += (model.margin(a), model.pending_loss(a), 0, 0, 0, 0, 0)
            else:
                words += (h.margin, h.pending, 1, h.equity, h.imr, h.mmr, h.free_collateral)
            words.append(model.fund_shares(a))
            if detail:
                words += model.withdraw_request(a) or (0, 0, 0)
                words += (self.wallets[i], model.min_nonce(a))
            else:
                words += (0, 0, 0, 0, 0)
            acct = accounts.get(self.keys[i])
            positions = acct.positions if acct is not None else {}
            words.append(len(positions))
            words += positions  # market ids, in opening order
            sizes = [0] * n_markets
            notionals = [0] * n_markets
            for m, pos in positions.items():
                sizes[m] = pos.size
                notionals[m] = pos.open_notional
            words += sizes
            words += notionals
        return words

    def _compare_snapshot(self, snap: Snapshot) -> None:
        """Every field of a decoded snapshot against the model, one ``expect`` each."""
        self._compare_system(snap, snap.parts == ALL_PARTS)
        detail = bool(snap.parts & PART_ACCOUNT_DETAIL)
        for i, acc in enumerate(snap.accounts):
            self._compare_account(i, acc, detail)

    @staticmethod
    def _unexplained_difference(output: bytes, expected: list[int]) -> None:
        """The chain's answer differs from the prediction in a word no field comparison covers
        (its layout, a part that should read as zeros): a lens or harness bug."""
        got = snapshot_words(output)
        i = next(
            (k for k, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y),
            min(len(got), len(expected)),
        )
        raise AssertionError(
            f"lens snapshot word {i} of {len(got)}: chain {got[i] if i < len(got) else None}, "
            f"predicted {expected[i] if i < len(expected) else None} (of {len(expected)}), "
            "yet every field agrees: a lens layout or harness bug"
        )

    def _compare_system(self, snap: Snapshot, full: bool) -> None:
        model = self.model
        expect(
            snap.timestamp == self.now, "INV-TIME", lambda: f"chain time {snap.timestamp}, machine {self.now}"
        )
        solvency = model.solvency()
        got = (snap.vault_assets, snap.liabilities, snap.dust)
        want = (solvency["vault_assets"], solvency["liabilities"], solvency["dust"])
        expect(got == want, "INV-SOLVENCY-EQ", lambda: f"engine.solvency() {got}, model {want}")
        expect(
            0 <= snap.dust <= self.dust_bound,
            "INV-SOLVENCY-DUST",
            lambda: f"dust {snap.dust} outside [0, {self.dust_bound}]",
        )
        expect(
            snap.fund_assets == model.fund_assets(),
            "INV-FUND-ASSETS",
            lambda: f"fund assets {snap.fund_assets}, model {model.fund_assets()}",
        )
        expect(
            snap.fund_supply == model.fund_supply(),
            "INV-FUND-SHARES",
            lambda: f"fund share supply {snap.fund_supply}, model {model.fund_supply()}",
        )
        for m, ms in enumerate(snap.markets):
            self._compare_market(m, ms, bool(snap.parts & PART_PRICES))
        if not snap.parts & PART_SYSTEM_DETAIL:
            return
        expect(
            snap.vault_tokens == model.vault_tokens and snap.vault_assets == snap.vault_tokens * self.w.scale,
            "INV-TOKENS",
            lambda: f"vault holds {snap.vault_tokens} tokens (assets {snap.vault_assets}), model {model.vault_tokens}",
        )
        expect(
            snap.total_margin == model.total_margin(),
            "INV-MARGIN-EQ",
            lambda: f"vault.totalMargin {snap.total_margin}, model {model.total_margin()}",
        )
        expect(
            snap.net_open_notional == model.net_open_notional(),
            "INV-POSITION-EQ",
            lambda: f"netOpenNotional {snap.net_open_notional}, model {model.net_open_notional()}",
        )
        expect(
            snap.unsettled_loss == model.unsettled_loss,
            "INV-PENDING-EQ",
            lambda: f"unsettledLoss {snap.unsettled_loss}, model {model.unsettled_loss}",
        )
        expect(
            snap.fund_tokens == snap.fund_assets,
            "INV-FUND-ASSETS",
            lambda: f"fund holds {snap.fund_tokens} tokens, totalAssets {snap.fund_assets}",
        )
        expect(
            snap.coverable == model.coverable(),
            "INV-FUND-ASSETS",
            lambda: f"coverable {snap.coverable}, model {model.coverable()}",
        )

    def _compare_market(self, m: int, ms: Any, with_prices: bool) -> None:
        model = self.model
        expect(
            ms.open_interest == model.open_interest(m),
            "INV-OPEN-INTEREST",
            lambda: f"market {m}: OI {ms.open_interest}, model {model.open_interest(m)}",
        )
        want_l = (model.loss_index(m, 0), model.loss_index(m, 1))
        expect(
            (ms.long_index, ms.short_index) == want_l,
            "INV-LOSS-INDEX",
            lambda: f"market {m}: L {(ms.long_index, ms.short_index)}, model {want_l}",
        )
        if not with_prices:
            return
        expect(
            ms.paused == (self.global_paused or self.paused[m]),
            "INV-PAUSE",
            lambda: f"market {m}: paused {ms.paused}, machine {self.global_paused or self.paused[m]}",
        )
        expect(
            ms.priced == (not self.stale[m]) and (not ms.priced or ms.price == self.prices[m]),
            "INV-ORACLE",
            lambda: f"market {m}: priced {ms.priced} at {ms.price}, machine stale {self.stale[m]} at {self.prices[m]}",
        )

    def _compare_account(self, i: int, acc: Any, detail: bool) -> None:
        model = self.model
        a = self.addr[i]
        expect(
            acc.margin == model.margin(a),
            "INV-MARGIN-EQ",
            lambda: f"actor {i}: margin {acc.margin}, model {model.margin(a)}",
        )
        held = model.markets_of(a)
        expect(
            acc.markets == held, "INV-POSITION-EQ", lambda: f"actor {i}: markets {acc.markets}, model {held}"
        )
        for m in range(len(MARKETS)):
            want = model.position(a, m)
            got = (acc.sizes[m], acc.notionals[m])
            expect(
                got == want,
                "INV-POSITION-EQ",
                lambda m=m, got=got, want=want: f"actor {i} market {m}: position {got}, model {want}",
            )
        pending = model.pending_loss(a)
        expect(
            acc.pending == pending,
            "INV-PENDING-EQ",
            lambda: f"actor {i}: pending loss {acc.pending}, model {pending}",
        )
        if not held:
            expect(acc.pending == 0, "INV-FLAT-NO-HAIRCUT", lambda: f"flat actor {i} owes {acc.pending}")
        try:
            h = model.health(a)
        except ModelRevert:
            h = None
        expect(
            acc.priced == (h is not None),
            "INV-ORACLE",
            lambda: f"actor {i}: chain priced {acc.priced}, model {h is not None}",
        )
        if h is not None:
            expect(
                acc.equity == h.equity,
                "INV-EQUITY-EQ",
                lambda: f"actor {i}: equity {acc.equity}, model {h.equity}",
            )
            expect(
                (acc.imr, acc.mmr) == (h.imr, h.mmr),
                "INV-REQUIREMENT-EQ",
                lambda: f"actor {i}: IMR/MMR {(acc.imr, acc.mmr)}, model {(h.imr, h.mmr)}",
            )
            expect(
                acc.free == h.free_collateral,
                "INV-FREE-COLLATERAL-EQ",
                lambda: f"actor {i}: free collateral {acc.free}, model {h.free_collateral}",
            )
        shares = model.fund_shares(a)
        expect(
            acc.fund_shares == shares,
            "INV-FUND-SHARES",
            lambda: f"actor {i}: shares {acc.fund_shares}, model {shares}",
        )
        if not detail:
            return
        req = model.withdraw_request(a) or (0, 0, 0)
        expect(
            acc.request == req, "INV-FUND-REQUEST", lambda: f"actor {i}: request {acc.request}, model {req}"
        )
        expect(
            acc.wallet == self.wallets[i],
            "INV-TOKENS",
            lambda: f"actor {i}: wallet {acc.wallet}, expected {self.wallets[i]}",
        )
        expect(
            acc.min_nonce == model.min_nonce(a),
            "INV-NONCE",
            lambda: f"actor {i}: min nonce {acc.min_nonce}, model {model.min_nonce(a)}",
        )

    def _compare_sums(self, snap: Snapshot) -> None:
        """Whole-system identities over every account (only meaningful on a full snapshot)."""
        for m, ms in enumerate(snap.markets):
            sizes = [acc.sizes[m] for acc in snap.accounts]
            longs = sum(s for s in sizes if s > 0)
            expect(
                sum(sizes) == 0 and longs == ms.open_interest,
                "INV-ZERO-SUM",
                lambda m=m,
                sizes=sizes,
                ms=ms: f"market {m}: sizes {sizes} sum {sum(sizes)}, OI {ms.open_interest}",
            )
        total_shares = sum(acc.fund_shares for acc in snap.accounts)
        expect(
            total_shares == snap.fund_supply,
            "INV-FUND-SHARES",
            lambda: f"Σ shares {total_shares} ≠ supply {snap.fund_supply}",
        )
        pending = sum(acc.pending for acc in snap.accounts)
        expect(
            pending >= snap.unsettled_loss,
            "INV-LOSS-FUNDED",
            lambda: f"Σ pending loss {pending} < unsettled loss {snap.unsettled_loss}",
        )
        tokens = sum(acc.wallet for acc in snap.accounts) + snap.vault_tokens + snap.fund_tokens
        expect(
            tokens == N_ACTORS * self.w.mint_tokens,
            "INV-TOKENS",
            lambda: f"tokens in wallets, vault and fund {tokens} ≠ minted {N_ACTORS * self.w.mint_tokens}",
        )

    def teardown(self) -> None:
        """A run ends with a full comparison whatever ``full_every`` is."""
        if type(self).full_every > 1 and self.steps % type(self).full_every:
            self.compare(full=True)


def _high_s(s: Signed) -> Signed:
    """The malleable twin of a signature (``s' = n − s``, v flipped): same signer, refused."""
    r, sv, v = s.signature[:32], int.from_bytes(s.signature[32:64], "big"), s.signature[64]
    return Signed(
        s.order, s.digest, r + (SECP256K1_N - sv).to_bytes(32, "big") + bytes([55 - v]), s.owner, False
    )


def _truncated(s: Signed) -> Signed:
    return Signed(s.order, s.digest, s.signature[:64], s.owner, False)


def weighted_action_names(cls: type) -> list[str]:
    """Every action name repeated by its weight (what the ``step`` rule samples from)."""
    return [name for name, weight, _ in actions_of(cls) for _ in range(weight)]


_PARAMS: dict[str, dict[str, R | C]] = {name: params for name, _, params in actions_of(BackstopMachine)}


def replay(world: World, steps: Sequence[tuple[str, dict[str, Any]]], full_every: int = 1) -> BackstopMachine:
    """Runs a recorded sequence of ``(rule, arguments)`` on a fresh machine, checking after every
    step; used by the regression tests and to reproduce deep-run failures."""
    BackstopMachine.world = world
    BackstopMachine.full_every = full_every
    machine = BackstopMachine()
    machine.check()
    for name, kwargs in steps:
        machine.do(name, kwargs)
        machine.check()
    machine.teardown()
    return machine

"""Property tests of the insurance fund's EIP-7540 redemption on pyrevm (in-process, no anvil):
random sequences of stakes, income (token transfers, and fees booked as the fund's credit in a
collateral vault), sweeps of that credit, losses (cover), share transfers, requests, claims,
cancels and time over three stakers, with after every step:

- conversions round against the caller (``convertTo*`` and ``previewDeposit`` down,
  ``previewMint`` up, against the exact formula of docs/margin-math.md);
- ``maxRedeem`` / ``maxWithdraw`` are exact: a claim of the max succeeds, one unit more reverts,
  and both are 0 outside the window;
- a claim never pays more than ``min(value at request, value now)`` of the shares it burns, and a
  cancel gives back shares worth at most the value at request;
- everything ever paid out (claims and cover) is at most what was deposited plus the income;
- the fund's assets are its tokens plus its credit in the vault, and a sweep changes neither
  them nor any share's value;
- previews revert; escrowed shares can neither be transferred nor named by a second request.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backstop.chain.abi import Artifacts, encode_call
from backstop.chain.evm import PyRevmBackend, Revert

TOKEN = 10**6
COOLDOWN = 3_600
WINDOW = 1_800
DEPLOYER = "0x00000000000000000000000000000000000dE910"
PROTOCOL = "0x00000000000000000000000000000000000C0FE5"  # draws cover: a loss to the stakers
SINK = "0x000000000000000000000000000000000000dEaD"  # an account whose margin pays the fees
STAKERS = [f"0x{'0' * 38}{i:02x}" for i in (0xA1, 0xB2, 0xC3)]
MAX_UINT = (1 << 256) - 1


class Fund:
    """A MockERC20, an InsuranceFund and a CollateralVault on pyrevm. The fund is wired to a
    cover-drawing EOA and pays cover into the vault, which books fees (sent by the same EOA as
    its engine) as the fund's credit."""

    def __init__(self) -> None:
        art = Artifacts.load()
        self.b = b = PyRevmBackend()
        self.errors = art.error_selectors(["InsuranceFund", "MockERC20", "CollateralVault"])
        for a in [DEPLOYER, PROTOCOL, *STAKERS]:
            b.mint_ether(a, 10**24)
        self.token = b.deploy(
            DEPLOYER, art.initcode("MockERC20", ["string", "string", "uint8"], "USD", "USD", 6)
        )
        self.fund = b.deploy(
            DEPLOYER,
            art.initcode(
                "InsuranceFund",
                ["address", "uint256", "uint256", "uint256", "uint256"],
                self.token,
                COOLDOWN,
                WINDOW,
                0,
                0,
            ),
        )
        self.vault = b.deploy(DEPLOYER, art.initcode("CollateralVault", ["address"], self.token))
        self.ok(DEPLOYER, self.fund, "wire(address,address)", PROTOCOL, self.vault)
        self.ok(DEPLOYER, self.vault, "wire(address,address)", PROTOCOL, self.fund)
        for a in [DEPLOYER, *STAKERS]:
            self.ok(DEPLOYER, self.token, "mint(address,uint256)", a, 10**9 * TOKEN)
            self.ok(a, self.token, "approve(address,uint256)", self.fund, MAX_UINT)
        # The vault's own tokens, out of which fees can be booked to the fund's credit.
        self.ok(DEPLOYER, self.token, "approve(address,uint256)", self.vault, MAX_UINT)
        self.ok(DEPLOYER, self.vault, "deposit(uint256)", 10**8 * TOKEN)
        self.base = b.snapshot()

    def reset(self) -> None:
        self.base = self.b.restore(self.base)

    def ok(self, sender: str, to: str, sig: str, *args) -> bytes:
        out = self.b.transact(sender, to, encode_call(sig, *args))
        assert not isinstance(out, Revert), f"{sig}{args} reverted 0x{out.data.hex()}"
        return out.output

    def reverts(self, sender: str, sig: str, *args, error: str | None = None) -> None:
        """``sig(args)`` on the fund reverts (with ``error`` if given), simulated: nothing moves."""
        out = self.b.call(sender, self.fund, encode_call(sig, *args))
        assert isinstance(out, Revert), f"{sig}{args} succeeded"
        if error is not None:
            assert out.selector == self.errors[error], f"{sig}{args}: expected {error}"

    def read(self, sig: str, *args, to: str | None = None) -> int:
        return int.from_bytes(self.b.view(DEPLOYER, to or self.fund, encode_call(sig, *args))[:32], "big")

    def request(self, controller: str) -> tuple[int, int, int]:
        out = self.b.view(DEPLOYER, self.fund, encode_call("redeemRequestOf(address)", controller))
        return tuple(int.from_bytes(out[i : i + 32], "big") for i in (0, 32, 64))  # type: ignore[return-value]

    def assets(self) -> tuple[int, int]:
        """``(tokens the fund holds, its credit in the vault)``."""
        return self.read("balanceOf(address)", self.fund, to=self.token), self.read(
            "fundCredit()", to=self.vault
        )

    def virtual(self) -> tuple[int, int]:
        """``(S', A')``: supply and assets with the virtual share and asset."""
        return self.read("totalSupply()") + 10**6, self.read("totalAssets()") + 1


@pytest.fixture(scope="module")
def fund() -> Fund:
    return Fund()


who = st.integers(0, len(STAKERS) - 1)
pct = st.integers(0, 110)
OPS = st.one_of(
    st.tuples(st.just("stake"), who, st.integers(0, 10_000 * TOKEN)),
    st.tuples(st.just("income"), st.integers(1, 2_000 * TOKEN)),
    st.tuples(st.just("fee"), st.integers(1, 2_000 * TOKEN)),
    st.tuples(st.just("sweep")),
    st.tuples(st.just("loss"), st.integers(1, 2_000 * TOKEN)),
    st.tuples(st.just("transfer"), who, who, pct),
    st.tuples(st.just("request"), who, pct),
    st.tuples(st.just("redeem"), who, pct),
    st.tuples(st.just("withdraw"), who, pct),
    st.tuples(st.just("cancel"), who),
    # request, a loss or income during the cooldown, into the window, claim
    st.tuples(
        st.just("cycle"),
        who,
        st.integers(1, 100),
        st.integers(-1_000 * TOKEN, 1_000 * TOKEN),
        st.sampled_from([0, 1, WINDOW // 2, WINDOW]),
        st.booleans(),
        st.integers(0, 100),
    ),
    st.tuples(st.just("to_window"), st.sampled_from([-1, 0, WINDOW // 2, WINDOW, WINDOW + 1])),
    st.tuples(st.just("to_window"), st.sampled_from([0, WINDOW // 3, WINDOW])),
    st.tuples(
        st.just("advance"),
        st.sampled_from([1, 600, COOLDOWN - 1, COOLDOWN, WINDOW, WINDOW + 1, 2 * COOLDOWN]),
    ),
)


class Ledger:
    def __init__(self) -> None:
        self.tokens_in = 0  # stakes + income (fees booked to the credit included)
        self.tokens_out = 0  # claims + cover


def check_conversions(f: Fund) -> None:
    s, a = f.virtual()
    for x in (1, 999_999, 10**6, 7 * TOKEN + 3, 10**15 + 17):
        assert f.read("convertToShares(uint256)", x) == x * s // a
        assert f.read("previewDeposit(uint256)", x) == x * s // a
        assert f.read("convertToAssets(uint256)", x) == x * a // s
        assert f.read("previewMint(uint256)", x) == -(-x * a // s)
    f.reverts(DEPLOYER, "previewRedeem(uint256)", 10**12, error="AsyncRedeemNoPreview")
    f.reverts(DEPLOYER, "previewWithdraw(uint256)", TOKEN, error="AsyncRedeemNoPreview")


def check_max(f: Fund, controller: str) -> None:
    """maxRedeem / maxWithdraw are exactly what a claim can burn and pay now."""
    n, v, at = f.request(controller)
    now = f.b.now
    in_window = n > 0 and at + COOLDOWN <= now <= at + COOLDOWN + WINDOW
    max_redeem = f.read("maxRedeem(address)", controller)
    max_withdraw = f.read("maxWithdraw(address)", controller)
    assert f.read("claimableRedeemRequest(uint256,address)", 0, controller) == max_redeem
    pending = f.read("pendingRedeemRequest(uint256,address)", 0, controller)
    assert pending == (n if n and now < at + COOLDOWN else 0)
    if not in_window:
        assert max_redeem == max_withdraw == 0
        return
    s, a = f.virtual()
    assert (max_redeem, max_withdraw) == (n, min(n * a // s, v))
    redeem = encode_call("redeem(uint256,address,address)", max_redeem, controller, controller)
    paid = f.b.call(controller, f.fund, redeem)
    assert not isinstance(paid, Revert) and int.from_bytes(paid.output[:32], "big") == max_withdraw
    withdraw = encode_call("withdraw(uint256,address,address)", max_withdraw, controller, controller)
    assert not isinstance(f.b.call(controller, f.fund, withdraw), Revert)
    f.reverts(
        controller,
        "redeem(uint256,address,address)",
        max_redeem + 1,
        controller,
        controller,
        error="ERC4626ExceededMaxRedeem",
    )
    f.reverts(
        controller,
        "withdraw(uint256,address,address)",
        max_withdraw + 1,
        controller,
        controller,
        error="ERC4626ExceededMaxWithdraw",
    )


def pick(f: Fund, i: int, view: str) -> str:
    """Staker ``i``, or the first staker from ``i`` on whose ``view`` is non-zero (claims and
    cancels mostly act on a request that exists)."""
    for k in range(len(STAKERS)):
        a = STAKERS[(i + k) % len(STAKERS)]
        if f.read(view, a):
            return a
    return STAKERS[i]


def apply(f: Fund, ledger: Ledger, op: tuple) -> None:
    kind = op[0]
    if kind == "stake":
        _, i, amount = op
        f.ok(STAKERS[i], f.fund, "deposit(uint256,address)", amount, STAKERS[i])
        ledger.tokens_in += amount
    elif kind == "income":
        f.ok(DEPLOYER, f.token, "transfer(address,uint256)", f.fund, op[1])
        ledger.tokens_in += op[1]
    elif kind == "fee":  # the "engine" books a fee from SINK's margin to the fund's credit
        # No positions and no socialized loss: the ledger's other claims are 0.
        adjust = "adjustMargins(address,int256,uint256,address,int256,uint256,int256)"
        f.ok(PROTOCOL, f.vault, adjust, SINK, 0, op[1], DEPLOYER, 0, 0, 0)
        ledger.tokens_in += op[1]
    elif kind == "sweep":  # by anyone: the credit becomes tokens, nothing else changes
        held, credit = f.assets()
        if credit == 0:
            out = f.b.call(STAKERS[0], f.vault, encode_call("sweepToFund()"))
            assert isinstance(out, Revert) and out.selector == f.errors["NothingToSweep"]
            return
        value, virtual = f.read("convertToAssets(uint256)", 10**12), f.virtual()
        f.ok(STAKERS[0], f.vault, "sweepToFund()")
        assert f.assets() == (held + credit, 0)
        assert (f.read("convertToAssets(uint256)", 10**12), f.virtual()) == (value, virtual)
    elif kind == "loss":
        out = f.ok(PROTOCOL, f.fund, "cover(uint256)", op[1])
        ledger.tokens_out += int.from_bytes(out[:32], "big")
    elif kind == "transfer":
        _, i, j, p = op
        a = STAKERS[i]
        balance = f.read("balanceOf(address)", a)
        f.reverts(a, "transfer(address,uint256)", STAKERS[j], balance + 1, error="ERC20InsufficientBalance")
        f.ok(a, f.fund, "transfer(address,uint256)", STAKERS[j], balance * min(p, 100) // 100)
    elif kind == "request":
        _, i, p = op
        a = STAKERS[i]
        balance = f.read("balanceOf(address)", a)
        n, _, at = f.request(a)
        shares = balance * min(p, 100) // 100
        if n and f.b.now <= at + COOLDOWN + WINDOW:
            f.reverts(a, "requestRedeem(uint256,address,address)", shares, a, a, error="RedeemRequestOpen")
            return
        if shares == 0:
            f.reverts(a, "requestRedeem(uint256,address,address)", 0, a, a, error="InvalidRedeemRequest")
            return
        supply = f.read("totalSupply()")
        # With an expired request the give-back changes the supply first: its value is read after.
        value = f.read("convertToAssets(uint256)", shares) if not n else None
        f.ok(a, f.fund, "requestRedeem(uint256,address,address)", shares, a, a)
        assert f.read("balanceOf(address)", a) <= balance - shares + n  # escrowed (plus what came back)
        got = f.request(a)
        assert got[0] == shares and got[2] == f.b.now
        if value is not None:
            assert got[1] == value and f.read("totalSupply()") == supply
        # Escrowed: not transferable, and no second request on the same controller.
        f.reverts(a, "requestRedeem(uint256,address,address)", 1, a, a, error="RedeemRequestOpen")
    elif kind in ("redeem", "withdraw"):
        _, i, p = op
        a = pick(f, i, "maxRedeem(address)")
        n, v, _ = f.request(a)
        max_redeem, max_withdraw = f.read("maxRedeem(address)", a), f.read("maxWithdraw(address)", a)
        if max_redeem == 0:
            return
        s, assets_now = f.virtual()
        before = f.read("balanceOf(address)", a, to=f.token)
        if kind == "redeem":
            shares = max_redeem * min(p, 100) // 100
            f.ok(a, f.fund, "redeem(uint256,address,address)", shares, a, a)
        else:
            assets = max_withdraw * min(p, 100) // 100
            out = f.ok(a, f.fund, "withdraw(uint256,address,address)", assets, a, a)
            shares = int.from_bytes(out[:32], "big")
        paid = f.read("balanceOf(address)", a, to=f.token) - before
        assert shares <= n
        assert paid <= shares * assets_now // s  # never more than the value now ...
        assert paid <= v * shares // n  # ... nor than the value at request
        ledger.tokens_out += paid
    elif kind == "cancel":
        # Staker 0 as drawn (it may have no request); otherwise one that has a request, if any.
        a = STAKERS[0] if op[1] == 0 else next((s for s in STAKERS if f.request(s)[0]), STAKERS[op[1]])
        n, v, _ = f.request(a)
        if n == 0:
            f.reverts(a, "cancelRedeemRequest(address)", a, error="NoRedeemRequest")
            return
        out = f.ok(a, f.fund, "cancelRedeemRequest(address)", a)
        returned, burned = int.from_bytes(out[:32], "big"), int.from_bytes(out[32:64], "big")
        assert returned + burned == n
        s, assets_now = f.virtual()  # after the burn
        assert returned * assets_now <= v * s  # the returned shares are worth at most V
        assert f.request(a) == (0, 0, 0)
    elif kind == "cycle":
        _, i, p, change, offset, by_assets, p2 = op
        apply(f, ledger, ("request", i, p))
        apply(
            f, ledger, ("loss", -change) if change < 0 else ("income", change) if change else ("advance", 1)
        )
        apply(f, ledger, ("to_window", offset))
        apply(f, ledger, ("withdraw" if by_assets else "redeem", i, p2))
    elif kind == "to_window":  # to the earliest open request's window start, plus an offset
        starts = [
            at + COOLDOWN
            for a in STAKERS
            if (r := f.request(a))[0] and (at := r[2]) + COOLDOWN + WINDOW >= f.b.now
        ]
        if starts:
            f.b.set_timestamp(max(f.b.now, min(starts) + op[1]))
    else:
        f.b.set_timestamp(f.b.now + op[1])


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.integers(1, 5_000 * TOKEN), min_size=3, max_size=3), st.lists(OPS, min_size=4, max_size=30)
)
def test_redemption_properties_hold_for_random_sequences(fund, stakes, ops):
    f = fund
    f.reset()
    ledger = Ledger()
    for op in [("stake", i, amount) for i, amount in enumerate(stakes)] + ops:
        apply(f, ledger, op)
        assert ledger.tokens_out <= ledger.tokens_in
        held, credit = f.assets()
        assert held + credit == f.read("totalAssets()") == ledger.tokens_in - ledger.tokens_out
        escrow = sum(f.request(a)[0] for a in STAKERS)
        assert f.read("balanceOf(address)", f.fund) == escrow
        assert sum(f.read("balanceOf(address)", a) for a in STAKERS) + escrow == f.read("totalSupply()")
        for a in STAKERS:
            check_max(f, a)
    check_conversions(f)

"""``ape run populate`` against a suite deployed by ``deploy_or_reuse``: deposits, positions and
equities to the wei, an idempotent re-run, a crash of -1/leverage that the real keeper
liquidates, time and price controls, and bad inputs that send nothing. The last tests run the
command line itself against an anvil of their own."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from backstop.chain.manifest import deploy_or_reuse
from backstop.chain.populate import PopulateError, book, execute, plan
from backstop.chain.suite import abis_of, open_suite
from backstop.config import load_config
from backstop.keeper import Keeper, LocalSigner
from backstop.units import WAD
from tests.support.anvil import ROOT, ape_run, block_number, free_port, listening
from tests.support.anvil import anvil as start_anvil

Account.enable_unaudited_hdwallet_features()
MNEMONIC = "test test test test test test test test test test test junk"
TOKEN = 10**6  # one unit of the 6-decimal mock collateral
SCALE = 10**12


@pytest.fixture
def deployed(project, chain, deployer, tmp_path):
    deployment, _ = deploy_or_reuse(
        project, chain, deployer, load_config(ROOT / "config" / "local.yaml"), root=tmp_path, local=True
    )
    return deployment, tmp_path / "deployments" / f"{chain.chain_id}.json"


@pytest.fixture
def w3(chain):
    return Web3(HTTPProvider(chain.provider.uri, request_kwargs={"timeout": 60}))


@pytest.fixture
def suite(deployed, w3, project):
    return open_suite(w3, deployed[1], abis_of(project))


@pytest.fixture
def keys(accounts):
    return [a.private_key for a in accounts]


def address(keys, i):
    return Account.from_key(keys[i]).address


def run(suite, keys, **options):
    """Plans and sends, collecting what is said."""
    lines: list[str] = []
    out = plan(suite, keys, **options)
    execute(suite, out, keys, say=lines.append)
    return out, lines


def test_populate_funds_deposits_and_opens_pairs_at_the_leverage(suite, keys, deployed):
    deployment = deployed[0]
    out, lines = run(suite, keys, accounts=6, collateral="10000", leverage="5", keeper_collateral="100000")
    assert [(f.index, f.deposit, f.mint) for f in out.funding] == [
        (0, 100_000 * TOKEN, 100_000 * TOKEN),
        *[(i, 10_000 * TOKEN, 10_000 * TOKEN) for i in range(1, 7)],
    ]
    assert [(t.long, t.short, t.size, t.price) for t in out.trades] == [
        (1, 2, 25 * WAD, 2000 * WAD),
        (3, 4, 25 * WAD, 2000 * WAD),
        (5, 6, 25 * WAD, 2000 * WAD),
    ]
    assert "accounts 1 long / 2 short: 25 ETH at 2000" in lines
    engine, vault = deployment.engine, deployment.vault
    for long, short in ((1, 2), (3, 4), (5, 6)):
        a, b = address(keys, long), address(keys, short)
        # 25 ETH at 2,000: notional 50,000 (5 x 10,000); taker fee 0.05 % = 25, maker 0.02 % = 10.
        assert tuple(engine.positionOf(a, 0)) == (25 * WAD, 50_000 * WAD)
        assert tuple(engine.positionOf(b, 0)) == (-25 * WAD, -50_000 * WAD)
        assert vault.marginOf(a) == 9_975 * WAD and vault.marginOf(b) == 9_990 * WAD
        assert engine.equityOf(a) == 9_975 * WAD and engine.equityOf(b) == 9_990 * WAD
        assert engine.maintenanceMarginOf(a) == engine.maintenanceMarginOf(b) == 2_500 * WAD
        assert engine.initialMarginOf(a) == 5_000 * WAD
        assert deployment.token.balanceOf(a) == 0
    assert vault.marginOf(address(keys, 0)) == 100_000 * WAD
    assert engine.marketsOf(address(keys, 0)) == []
    assert engine.openInterestOf(0) == 75 * WAD
    # The fees are the fund's credit, kept in the vault until sweepToFund (docs/design.md §6).
    assert vault.fundCredit() == 3 * 35 * TOKEN
    assert deployment.token.balanceOf(deployment.fund) == 0
    rows = book(suite, keys, include=range(7))
    assert [(r.index, r.positions, r.liquidatable) for r in rows] == [
        (0, {}, False),
        *[(i, {"ETH": 25 * WAD if i % 2 else -25 * WAD}, False) for i in range(1, 7)],
    ]
    assert rows[1].equity == 9_975 * WAD and rows[1].mmr == 2_500 * WAD


def test_a_rerun_tops_up_and_trades_only_what_is_missing(suite, keys, deployed, chain):
    engine = deployed[0].engine
    run(suite, keys, accounts=4, collateral="10000", leverage="5")
    head = chain.blocks.head.number
    again, lines = run(suite, keys, accounts=4, collateral="10000", leverage="5")
    # The fees are topped up (one deposit each: the allowance stands); the pairs are at 5x already.
    assert [(f.index, f.deposit, f.mint) for f in again.funding] == [
        (1, 25 * TOKEN, 25 * TOKEN), (2, 10 * TOKEN, 10 * TOKEN), (3, 25 * TOKEN, 25 * TOKEN), (4, 10 * TOKEN, 10 * TOKEN),
    ]  # fmt: skip
    assert again.trades == []
    assert "pair 1/2: already at 5x in ETH, no trade" in again.notes
    assert chain.blocks.head.number == head + 8  # a mint and a deposit per account
    assert engine.equityOf(address(keys, 1)) == 10_000 * WAD
    # More collateral and leverage on a third run: fresh orders (new nonces), the positions grow.
    third, _ = run(suite, keys, accounts=4, collateral="12000", leverage="6")
    assert [(t.long, t.short, t.size) for t in third.trades] == [(1, 2, 11 * WAD), (3, 4, 11 * WAD)]
    assert engine.positionOf(address(keys, 1), 0)[0] == 36 * WAD  # 6 x 12,000 / 2,000
    assert engine.positionOf(address(keys, 4), 0)[0] == -36 * WAD


def test_a_move_of_minus_one_over_leverage_makes_the_longs_liquidatable_and_the_keeper_takes_them(
    suite, keys, deployed, w3, tmp_path
):
    deployment = deployed[0]
    engine = deployment.engine
    run(suite, keys, accounts=6, collateral="10000", leverage="5", keeper_collateral="100000")
    out, lines = run(suite, keys, moves=["ETH=-20%"])
    assert lines == ["moved ETH: 2000 -> 1600"]
    assert deployment.feeds["ETH"].answer() == 1600 * 10**8
    assert deployment.oracle.priceOf(0) == 1600 * WAD
    longs = [address(keys, i) for i in (1, 3, 5)]
    for a in longs:
        # 9,975 + 25 x (1,600 - 2,000) = -25 < MMR = 5 % of 40,000 = 2,000.
        assert engine.equityOf(a) == -25 * WAD
        assert engine.maintenanceMarginOf(a) == 2_000 * WAD
    for i in (2, 4, 6):
        assert engine.equityOf(address(keys, i)) == 19_990 * WAD
    assert [r.liquidatable for r in book(suite, keys, include=range(7))] == [False, *[True, False] * 3]

    keeper = Keeper(
        w3,
        engine.address,
        LocalSigner(keys[0]),
        state_path=tmp_path / "keeper.json",
        start_block=deployment.blocks["MarginEngine"],
    )
    report = keeper.run_once()
    assert sorted(report.liquidated) == sorted(longs)
    assert (report.failed, report.unabsorbable) == (0, [])
    for a in longs:
        assert engine.marketsOf(a) == []
    assert engine.positionOf(address(keys, 0), 0)[0] == 75 * WAD  # the keeper took the three longs


def test_advance_makes_prices_stale_and_refresh_stamps_the_mock_feeds(suite, keys, deployed, chain):
    feed = deployed[0].feeds["ETH"]
    with pytest.raises(PopulateError, match=r"market ETH: its price is stale .* add --refresh"):
        plan(suite, keys, accounts=2, advance=86_401)
    before = chain.blocks.head.timestamp
    out, lines = run(suite, keys, accounts=2, advance=86_401, refresh=True)
    assert out.refresh == ["ETH", "BTC"]
    assert lines[0].startswith("advanced 86401 s")
    assert lines[1:3] == [
        "refreshed ETH: answer 200000000000 stamped now",
        "refreshed BTC: answer 6000000000000 stamped now",
    ]
    head = chain.blocks.head.timestamp
    assert head >= before + 86_401
    assert feed.answer() == 2000 * 10**8 and feed.updatedAt() >= before + 86_401
    assert [(t.long, t.short, t.size) for t in out.trades] == [(1, 2, 25 * WAD)]
    assert deployed[0].engine.positionOf(address(keys, 1), 0)[0] == 25 * WAD


def test_an_absolute_move_and_several_moves_in_one_run(suite, keys, deployed):
    out, lines = run(suite, keys, moves=["ETH=1400.5", "BTC=+10%"])
    assert [(m.market, m.old, m.new, m.mock) for m in out.moves] == [
        ("ETH", 2000 * 10**8, 140050000000, True),
        ("BTC", 60_000 * 10**8, 66_000 * 10**8, True),
    ]
    assert deployed[0].oracle.priceOf(0) == 14005 * WAD // 10
    assert deployed[0].oracle.priceOf(1) == 66_000 * WAD


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"accounts": 2, "market": "SOL"}, "market 'SOL': not in the manifest (listed: ETH, BTC)"),
        ({"moves": ["SOL=-10%"]}, "market 'SOL': not in the manifest"),
        ({"moves": ["ETH=-30"]}, "--move ETH=-30: a price must be > 0"),
        ({"moves": ["ETH:-30%"]}, "--move 'ETH:-30%': expected MARKET=PRICE"),
        ({"moves": ["ETH=-10%", "ETH=-100%"]}, "--move ETH=-100%: the ETH price would be 0"),
        (
            {"accounts": 2, "leverage": "10.5"},
            "--leverage 10.5: above 1/initial margin of ETH (10% allows at most 10x)",
        ),
        ({"accounts": 3}, "--accounts 3: an even number expected"),
        ({"accounts": 60}, "--accounts 60: only 59 test accounts"),
        ({"accounts": 2, "collateral": "1.0000001"}, "--collateral 1.0000001: not a token amount"),
        (
            {"accounts": 2, "collateral": "50000000"},
            "market ETH: the trades would raise open interest to 125000 (cap 100000): fewer --accounts",
        ),
    ],
)
def test_a_bad_input_is_named_and_nothing_is_sent(suite, keys, chain, options, message):
    head = chain.blocks.head.number
    with pytest.raises(PopulateError) as info:
        plan(suite, keys, **options)
    assert str(info.value).startswith(message)
    assert chain.blocks.head.number == head


def test_a_manifest_that_is_missing_stale_or_for_another_chain_is_refused(deployed, w3, project, tmp_path):
    abis = abis_of(project)
    with pytest.raises(PopulateError, match=r"no deploy manifest; run `ape run deploy` first"):
        open_suite(w3, tmp_path / "nothing.json", abis)
    manifest = json.loads(deployed[1].read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**manifest, "chain_id": 11155111}))
    with pytest.raises(PopulateError, match=r"describes chain 11155111, but the node is chain 31337"):
        open_suite(w3, other, abis)
    manifest["contracts"]["MarginEngine"]["address"] = "0x" + "42" * 20
    other.write_text(json.dumps(manifest))
    with pytest.raises(PopulateError, match=r"MarginEngine 0x4242.* has no code on chain 31337"):
        open_suite(w3, other, abis)
    other.write_text("{}")
    with pytest.raises(PopulateError, match=r"not a deploy manifest"):
        open_suite(w3, other, abis)


# --- the command line, against an anvil of its own --------------------------------------------------------


@pytest.fixture
def anvil():
    with start_anvil() as url:
        yield url


def table_rows(stdout: str) -> list[list[str]]:
    """The cells of the body rows of the closing table."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in stdout.splitlines()
        if line.startswith("│")
    ]


def address_of(i: int) -> str:
    """Anvil's default account ``i`` (the ape-config mnemonic's)."""
    return Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address


def test_the_command_line_populates_a_long_lived_chain_and_refuses_bad_input(anvil, tmp_path):
    manifest = str(tmp_path / "manifest.json")
    deployed = ape_run(["deploy", "--manifest", manifest], anvil)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    result = ape_run(
        ["populate", "--manifest", manifest, "--accounts", "2", "--keeper-collateral", "50000"], anvil
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "accounts 1 long / 2 short: 25 ETH at 2000" in result.stdout
    assert "Starting 'anvil'" not in result.stdout + result.stderr
    # The table: the keeper, then the pair, at 5x with 2,500 of MMR each.
    rows = table_rows(result.stdout)
    assert rows[0] == ["0", "keeper", address_of(0), "50,000.00", "50,000.00", "-", "50,000.00", "0.00", "no"]
    assert rows[1] == [
        "1",
        "long",
        address_of(1),
        "10,000.00",
        "9,975.00",
        "ETH 25",
        "9,975.00",
        "2,500.00",
        "no",
    ]
    assert rows[2] == [
        "2",
        "short",
        address_of(2),
        "10,000.00",
        "9,990.00",
        "ETH -25",
        "9,990.00",
        "2,500.00",
        "no",
    ]
    assert len(rows) == 3
    head = block_number(anvil)
    # A bad input exits 2 with one line and sends nothing; the others are named in process
    # (test_a_bad_input_is_named_and_nothing_is_sent, test_a_manifest_that_is_missing_...).
    bad = ape_run(["populate", "--manifest", manifest, "--move", "ETH=-100%"], anvil)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert bad.stderr.startswith(
        "populate: --move ETH=-100%: the ETH price would be 0 (must stay > 0)\n"
    ), bad.stderr
    assert block_number(anvil) == head  # nothing sent
    crash = ape_run(["populate", "--manifest", manifest, "--move", "ETH=-25%"], anvil)
    assert crash.returncode == 0, crash.stdout + crash.stderr
    assert "moved ETH: 2000 -> 1500" in crash.stdout
    # 9,975 + 25 x (1,500 - 2,000) = -2,525 < MMR = 5 % of 37,500.
    rows = table_rows(crash.stdout)
    assert rows[1] == [
        "1",
        "long",
        address_of(1),
        "0.00",
        "9,975.00",
        "ETH 25",
        "-2,525.00",
        "1,875.00",
        "yes",
    ]
    assert rows[2][6:] == ["22,490.00", "1,875.00", "no"]


def test_a_dead_rpc_is_refused_and_no_node_is_started():
    port = free_port()
    result = ape_run(["populate", "--move", "ETH=-25%"], f"http://127.0.0.1:{port}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"populate: no node answers at http://127.0.0.1:{port}" in result.stderr
    assert "refusing to start a node in its place" in result.stderr
    assert not listening(port)

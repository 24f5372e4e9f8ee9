"""PrimarySale + TestYenStablecoin on anvil through the committed artifacts: listings, buy, permit,
allowlist vouchers, off-chain (card) mints, reentrancy through onERC721Received, caps and supply."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from web3 import Web3

from tests.contracts._points_helpers import (
    ZERO,
    addr,
    deploy,
    events,
    expect_deploy_revert,
    expect_revert,
    now,
    role,
    send,
    sign_permit,
    sign_typed,
)
from tests.contracts.forwarding import FORWARD_REQUEST_TYPES, forwarder_domain

PRICE = 1_000  # yen per token
NO_VOUCHER = (0, 0, 0, b"")


@pytest.fixture(scope="module")
def env(session_w3: Web3, anvil: Any) -> SimpleNamespace:
    w3 = session_w3
    keys = anvil.keys
    a = [addr(k) for k in keys]
    e = SimpleNamespace(
        w3=w3,
        keys=keys,
        admin=a[0],
        minter=a[1],
        signer=a[2],
        lister=a[3],
        treasury=a[4],
        buyers=a[5:10],
        buyer_keys=keys[5:10],
        signer_key=keys[2],
    )
    e.forwarder = deploy(w3, "FurusatoForwarder", sender=e.admin)
    e.yen = deploy(w3, "TestYenStablecoin", e.admin, sender=e.admin)
    e.sale = deploy(w3, "PrimarySale", e.admin, e.treasury, e.forwarder.address, sender=e.admin)
    e.nft = deploy(w3, "MockMintableCollection", e.sale.address, sender=e.admin)
    e.points = deploy(
        w3, "RegionPoints", "Mukawa Points", "MKW", e.admin, e.forwarder.address, sender=e.admin
    )
    send(e.points.functions.grantRole(role("SETTINGS_ROLE"), e.admin), e.admin)
    send(e.points.functions.setProgramme(1, 0, True), e.admin)
    send(e.sale.functions.grantRole(role("SIGNER_ROLE"), e.signer), e.admin)
    send(e.sale.functions.grantRole(role("MINTER_ROLE"), e.minter), e.admin)
    for b in e.buyers:
        send(e.yen.functions.mint(b, 1_000_000), e.admin)
        send(e.points.functions.issue(b, 100_000, 1, "welcome"), e.admin)
    return e


def listing_params(e: SimpleNamespace, **over: Any) -> tuple:
    t = now(e.w3)
    p = {
        "collection": e.nft.address,
        "listerBps": 7_000,
        "start": t - 10,
        "end": t + 86_400,
        "paymentToken": e.yen.address,
        "walletCap": 3,
        "supply": 10,
        "sold": 0,
        "lister": e.lister,
        "allowlistOnly": False,
        "paused": False,
        "price": PRICE,
    }
    p.update(over)
    return tuple(p.values())


def create(e: SimpleNamespace, **over: Any) -> int:
    rc = send(e.sale.functions.createListing(listing_params(e, **over)), e.admin)
    return events(e.sale, "ListingCreated", rc)[0].args.listingId


def approve(e: SimpleNamespace, buyer: str, amount: int, token: Any = None) -> None:
    send((token or e.yen).functions.approve(e.sale.address, amount), buyer)


def voucher(
    e: SimpleNamespace,
    buyer: str,
    listing_id: int,
    max_qty: int,
    nonce: int,
    deadline: int,
    *,
    key: str | None = None,
    chain_id: int | None = None,
) -> tuple:
    domain = {
        "name": "FurusatoPrimarySale",
        "version": "1",
        "chainId": chain_id if chain_id is not None else e.w3.eth.chain_id,
        "verifyingContract": e.sale.address,
    }
    types = {
        "Voucher": [
            {"name": "buyer", "type": "address"},
            {"name": "listingId", "type": "uint256"},
            {"name": "maxQuantity", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ]
    }
    msg = {
        "buyer": buyer,
        "listingId": listing_id,
        "maxQuantity": max_qty,
        "nonce": nonce,
        "deadline": deadline,
    }
    sig = sign_typed(key or e.signer_key, domain, types, "Voucher", msg)
    return (max_qty, nonce, deadline, sig)


def yen(e: SimpleNamespace, who: str) -> int:
    return e.yen.functions.balanceOf(who).call()


# ---------------------------------------------------------------------------- TestYenStablecoin


def test_test_yen_stablecoin(w3: Web3, env: SimpleNamespace) -> None:
    f = env.yen.functions
    assert f.name().call() == "Test JPY Stablecoin (TEST ONLY)"
    assert f.symbol().call() == "tJPY" and f.decimals().call() == 0
    rc = send(f.mint(env.lister, 500), env.admin)
    assert dict(events(env.yen, "TestYenMinted", rc)[0].args) == {
        "minter": env.admin,
        "to": env.lister,
        "amount": 500,
    }
    expect_revert(f.mint(env.lister, 1), env.lister, "AccessControlUnauthorizedAccount")
    send(f.grantRole(role("MINTER_ROLE"), env.minter), env.admin)
    send(f.mint(env.minter, 1), env.minter)
    expect_revert(f.mint(ZERO, 1), env.admin, "ERC20InvalidReceiver")
    expect_deploy_revert(
        w3, "TestYenStablecoin", ZERO, sender=env.admin, error="TestYenStablecoinInvalidAdmin"
    )


# ---------------------------------------------------------------------------- admin


def test_listing_admin(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    assert s.treasury().call() == env.treasury
    rc = send(s.createListing(listing_params(env)), env.admin)
    ev = events(env.sale, "ListingCreated", rc)[0].args
    assert (ev.listingId, ev.collection, ev.paymentToken, ev.lister, ev.price, ev.supply) == (
        1,
        env.nft.address,
        env.yen.address,
        env.lister,
        PRICE,
        10,
    )
    stored = s.listing(1).call()
    assert stored[0] == env.nft.address and stored[6] == 10 and stored[7] == 0
    assert s.listingCount().call() == 1
    expect_revert(
        s.createListing(listing_params(env)), env.buyers[0], "AccessControlUnauthorizedAccount"
    )
    t = now(w3)
    for bad in (
        {"collection": ZERO},
        {"paymentToken": ZERO},
        {"lister": ZERO},
        {"listerBps": 10_001},
        {"start": t + 5, "end": t + 5},
        {"supply": 0},
        {"walletCap": 0},
    ):
        expect_revert(
            s.createListing(listing_params(env, **bad)), env.admin, "PrimarySaleInvalidListing"
        )
    rc = send(s.setListingPaused(1, True), env.admin)
    assert dict(events(env.sale, "ListingPausedSet", rc)[0].args) == {
        "listingId": 1,
        "paused": True,
    }
    expect_revert(s.setListingPaused(1, False), env.buyers[0], "AccessControlUnauthorizedAccount")
    expect_revert(s.setListingPaused(99, False), env.admin, "PrimarySaleUnknownListing")
    rc = send(s.setTreasury(env.lister), env.admin)
    assert events(env.sale, "TreasurySet", rc)[0].args.treasury == env.lister
    expect_revert(s.setTreasury(env.lister), env.buyers[0], "AccessControlUnauthorizedAccount")
    expect_revert(s.setTreasury(ZERO), env.admin, "PrimarySaleInvalidTreasury")
    expect_deploy_revert(
        w3,
        "PrimarySale",
        ZERO,
        env.treasury,
        ZERO,
        sender=env.admin,
        error="PrimarySaleInvalidAdmin",
    )
    expect_deploy_revert(
        w3,
        "PrimarySale",
        env.admin,
        ZERO,
        ZERO,
        sender=env.admin,
        error="PrimarySaleInvalidTreasury",
    )


# ---------------------------------------------------------------------------- buy


def test_buy_splits_payment_and_mints(w3: Web3, env: SimpleNamespace) -> None:
    lid = create(env)
    b = env.buyers[0]
    approve(env, b, 2 * PRICE)
    before = (yen(env, b), yen(env, env.lister), yen(env, env.treasury))
    rc = send(env.sale.functions.buy(lid, 2, NO_VOUCHER), b)
    ev = events(env.sale, "Purchased", rc)[0].args
    assert dict(ev) == {
        "listingId": lid,
        "buyer": b,
        "quantity": 2,
        "firstTokenId": 1,
        "paid": 2000,
        "listerAmount": 1400,
    }
    assert yen(env, b) == before[0] - 2000
    assert yen(env, env.lister) == before[1] + 1400
    assert yen(env, env.treasury) == before[2] + 600
    assert [env.nft.functions.ownerOf(i).call() for i in (1, 2)] == [b, b]
    assert env.sale.functions.mintedBy(lid, b).call() == 2
    assert env.sale.functions.listing(lid).call()[7] == 2
    assert yen(env, env.sale.address) == 0  # the sale holds no funds


def test_buy_with_points_all_to_treasury(w3: Web3, env: SimpleNamespace) -> None:
    lid = create(env, paymentToken=env.points.address, listerBps=0, price=300)
    b = env.buyers[1]
    approve(env, b, 300, env.points)
    send(env.sale.functions.buy(lid, 1, NO_VOUCHER), b)
    assert env.points.functions.balanceOf(env.treasury).call() == 300
    assert env.points.functions.balanceOf(env.lister).call() == 0


def test_buy_reverts(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    b = env.buyers[0]
    t = now(w3)
    lid = create(env)
    early = create(env, start=t + 1000, end=t + 2000)
    late = create(env, start=t - 1000, end=t - 1)
    approve(env, b, 10 * PRICE)
    expect_revert(s.buy(99, 1, NO_VOUCHER), b, "PrimarySaleUnknownListing")
    expect_revert(s.buy(early, 1, NO_VOUCHER), b, "PrimarySaleNotOpen")
    expect_revert(s.buy(late, 1, NO_VOUCHER), b, "PrimarySaleNotOpen")
    expect_revert(s.buy(lid, 0, NO_VOUCHER), b, "PrimarySaleZeroQuantity")
    expect_revert(s.buy(lid, 4, NO_VOUCHER), b, "PrimarySaleWalletCapExceeded")
    small = create(env, supply=2)
    expect_revert(s.buy(small, 3, NO_VOUCHER), b, "PrimarySaleSupplyExceeded")
    send(s.setListingPaused(lid, True), env.admin)
    expect_revert(s.buy(lid, 1, NO_VOUCHER), b, "PrimarySaleListingPaused")
    send(s.setListingPaused(lid, False), env.admin)
    send(env.yen.functions.approve(env.sale.address, 0), b)
    expect_revert(s.buy(lid, 1, NO_VOUCHER), b, "ERC20InsufficientAllowance")
    allowlisted = create(env, allowlistOnly=True)
    approve(env, b, PRICE)
    expect_revert(
        s.buy(allowlisted, 1, NO_VOUCHER), b, "PrimarySaleVoucherExpired"
    )  # no voucher given


def test_many_buyers_cap_and_supply(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    lid = create(env, supply=10, walletCap=3)
    bought = {}
    for b in env.buyers:
        approve(env, b, 10 * PRICE)
    for round_ in range(3):
        for b in env.buyers:
            left = 10 - s.listing(lid).call()[7]
            if left == 0:
                expect_revert(s.buy(lid, 1, NO_VOUCHER), b, "PrimarySaleSupplyExceeded")
                continue
            if bought.get(b, 0) == 3:
                expect_revert(s.buy(lid, 1, NO_VOUCHER), b, "PrimarySaleWalletCapExceeded")
                continue
            qty = min(2 if round_ == 0 else 1, left)
            send(s.buy(lid, qty, NO_VOUCHER), b)
            bought[b] = bought.get(b, 0) + qty
    assert sum(bought.values()) == 10 == s.listing(lid).call()[7]
    assert all(v <= 3 for v in bought.values())
    assert sum(env.nft.functions.balanceOf(b).call() for b in env.buyers) == 10
    for b in env.buyers:
        assert s.mintedBy(lid, b).call() == bought.get(b, 0)


# ---------------------------------------------------------------------------- allowlist vouchers


def test_allowlist_vouchers(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    lid = create(env, allowlistOnly=True)
    other = create(env, allowlistOnly=True)
    b, c = env.buyers[0], env.buyers[1]
    approve(env, b, 10 * PRICE)
    approve(env, c, 10 * PRICE)
    dl = now(w3) + 3600
    v = voucher(env, b, lid, 2, 7, dl)
    rc = send(s.buy(lid, 2, v), b)
    assert dict(events(env.sale, "VoucherRedeemed", rc)[0].args) == {"buyer": b, "nonce": 7}
    assert s.voucherUsed(b, 7).call()
    expect_revert(s.buy(lid, 1, v), b, "PrimarySaleVoucherUsed")  # replay
    v2 = voucher(env, b, lid, 1, 8, dl)
    expect_revert(s.buy(lid, 2, v2), b, "PrimarySaleVoucherQuantityExceeded")
    expect_revert(s.buy(lid, 1, v2), c, "PrimarySaleInvalidVoucherSigner")  # bound to b
    expect_revert(s.buy(other, 1, v2), b, "PrimarySaleInvalidVoucherSigner")  # bound to the listing
    wrong_chain = voucher(env, b, lid, 1, 9, dl, chain_id=1)
    expect_revert(s.buy(lid, 1, wrong_chain), b, "PrimarySaleInvalidVoucherSigner")
    not_signer = voucher(env, b, lid, 1, 10, dl, key=env.buyer_keys[4])
    expect_revert(s.buy(lid, 1, not_signer), b, "PrimarySaleInvalidVoucherSigner")
    expired = voucher(env, b, lid, 1, 11, now(w3) - 1)
    expect_revert(s.buy(lid, 1, expired), b, "PrimarySaleVoucherExpired")
    expect_revert(s.buy(lid, 1, (1, 12, dl, b"\x01" * 65)), b, "PrimarySaleInvalidVoucherSigner")
    send(s.buy(lid, 1, v2), b)
    assert s.mintedBy(lid, b).call() == 3
    v3 = voucher(env, b, lid, 1, 13, dl)
    expect_revert(s.buy(lid, 1, v3), b, "PrimarySaleWalletCapExceeded")  # cap still holds
    assert s.voucherDigest(b, lid, 1, 13, dl).call() != b"\x00" * 32


# ---------------------------------------------------------------------------- permit


def test_buy_with_permit(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    lid = create(env)
    i = 2
    b, key = env.buyers[i], env.buyer_keys[i]
    dl = now(w3) + 3600
    v, r, ss = sign_permit(key, env.yen, env.sale.address, 2 * PRICE, dl)
    assert env.yen.functions.allowance(b, env.sale.address).call() == 0
    rc = send(s.buyWithPermit(lid, 2, NO_VOUCHER, dl, v, r, ss), b)
    assert events(env.sale, "Purchased", rc)[0].args.quantity == 2
    assert env.nft.functions.balanceOf(b).call() == 2
    # replayed permit: nonce consumed, allowance spent
    expect_revert(s.buyWithPermit(lid, 1, NO_VOUCHER, dl, v, r, ss), b, "ERC2612InvalidSigner")
    # a permit for another chain
    v1, r1, s1 = sign_permit(key, env.yen, env.sale.address, PRICE, dl, chain_id=1)
    expect_revert(s.buyWithPermit(lid, 1, NO_VOUCHER, dl, v1, r1, s1), b, "ERC2612InvalidSigner")
    # expired permit
    past = now(w3) - 1
    v2, r2, s2 = sign_permit(key, env.yen, env.sale.address, PRICE, past)
    expect_revert(
        s.buyWithPermit(lid, 1, NO_VOUCHER, past, v2, r2, s2), b, "ERC2612ExpiredSignature"
    )
    # a permit front-run by someone else still lets the purchase through
    v3, r3, s3 = sign_permit(key, env.yen, env.sale.address, PRICE, dl)
    send(env.yen.functions.permit(b, env.sale.address, PRICE, dl, v3, r3, s3), env.admin)
    send(s.buyWithPermit(lid, 1, NO_VOUCHER, dl, v3, r3, s3), b)
    assert env.nft.functions.balanceOf(b).call() == 3
    expect_revert(
        s.buyWithPermit(99, 1, NO_VOUCHER, dl, v3, r3, s3), b, "PrimarySaleUnknownListing"
    )


def test_buy_with_permit_points_and_voucher(w3: Web3, env: SimpleNamespace) -> None:
    lid = create(env, paymentToken=env.points.address, price=250, allowlistOnly=True)
    i = 3
    b, key = env.buyers[i], env.buyer_keys[i]
    dl = now(w3) + 3600
    v, r, s = sign_permit(key, env.points, env.sale.address, 500, dl)
    send(env.sale.functions.buyWithPermit(lid, 2, voucher(env, b, lid, 2, 1, dl), dl, v, r, s), b)
    assert env.nft.functions.balanceOf(b).call() == 2
    assert env.points.functions.balanceOf(env.lister).call() == 350


# ---------------------------------------------------------------------------- card sales


def test_mint_paid_off_chain(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    lid = create(env, supply=4, walletCap=3)
    to = env.buyers[4]
    ref = Web3.keccak(text="stripe:pi_123")
    expect_revert(
        s.mintPaidOffChain(lid, to, 1, ref), env.buyers[0], "AccessControlUnauthorizedAccount"
    )
    rc = send(s.mintPaidOffChain(lid, to, 2, ref), env.minter)
    assert dict(events(env.sale, "PaidOffChainMinted", rc)[0].args) == {
        "listingId": lid,
        "to": to,
        "quantity": 2,
        "firstTokenId": 1,
        "paymentRef": ref,
    }
    assert env.nft.functions.balanceOf(to).call() == 2 and s.paymentRefUsed(ref).call()
    expect_revert(s.mintPaidOffChain(lid, to, 1, ref), env.minter, "PrimarySalePaymentRefUsed")
    ref2, ref3 = Web3.keccak(text="r2"), Web3.keccak(text="r3")
    expect_revert(s.mintPaidOffChain(lid, to, 2, ref2), env.minter, "PrimarySaleWalletCapExceeded")
    expect_revert(
        s.mintPaidOffChain(lid, env.buyers[0], 3, ref2), env.minter, "PrimarySaleSupplyExceeded"
    )
    expect_revert(s.mintPaidOffChain(lid, to, 0, ref2), env.minter, "PrimarySaleZeroQuantity")
    expect_revert(s.mintPaidOffChain(99, to, 1, ref2), env.minter, "PrimarySaleUnknownListing")
    send(s.setListingPaused(lid, True), env.admin)
    expect_revert(s.mintPaidOffChain(lid, to, 1, ref3), env.minter, "PrimarySaleListingPaused")


# ---------------------------------------------------------------------------- reentrancy


def test_reentrancy_through_on_erc721_received(w3: Web3, env: SimpleNamespace) -> None:
    s = env.sale.functions
    lid = create(env, supply=10, walletCap=2)
    attacker = deploy(w3, "ReentrantBuyer", env.sale.address, sender=env.admin)
    send(env.yen.functions.mint(attacker.address, 100 * PRICE), env.admin)
    send(attacker.functions.approve(env.yen.address, 100 * PRICE), env.admin)
    # a re-entrant buy reverts the whole purchase
    expect_revert(
        attacker.functions.attack(lid, 2, 1, False), env.admin, "ReentrancyGuardReentrantCall"
    )
    assert s.mintedBy(lid, attacker.address).call() == 0
    # with the re-entry's revert swallowed, only the outer purchase happens: cap and supply hold
    send(attacker.functions.attack(lid, 2, 5, True), env.admin)
    err = attacker.functions.lastError().call()
    assert (
        "0x" + err[:4].hex() == "0x" + Web3.keccak(text="ReentrancyGuardReentrantCall()")[:4].hex()
    )
    assert s.mintedBy(lid, attacker.address).call() == 2
    assert env.nft.functions.balanceOf(attacker.address).call() == 2
    assert s.listing(lid).call()[7] == 2
    assert yen(env, attacker.address) == 98 * PRICE
    expect_revert(
        attacker.functions.attack(lid, 1, 0, False), env.admin, "PrimarySaleWalletCapExceeded"
    )


# ---------------------------------------------------------------------------- ERC-2771


def test_forwarded_buy(w3: Web3, env: SimpleNamespace) -> None:
    lid = create(env)
    i = 4
    b, key = env.buyers[i], env.buyer_keys[i]
    approve(env, b, PRICE)
    data = bytes.fromhex(env.sale.encode_abi("buy", [lid, 1, NO_VOUCHER])[2:])
    fwd = env.forwarder
    dl = now(w3) + 600
    domain = forwarder_domain(w3.eth.chain_id, fwd.address)
    types = FORWARD_REQUEST_TYPES
    msg = {
        "from": b,
        "to": env.sale.address,
        "value": 0,
        "gas": 400_000,
        "nonce": fwd.functions.nonces(b).call(),
        "deadline": dl,
        "data": data,
    }
    sig = sign_typed(key, domain, types, "ForwardRequest", msg)
    req = (b, env.sale.address, 0, 400_000, dl, data, sig)
    send(fwd.functions.execute(req), env.admin)
    assert env.nft.functions.balanceOf(b).call() == 1
    expect_revert(fwd.functions.execute(req), env.admin, "ERC2771ForwarderInvalidSigner")

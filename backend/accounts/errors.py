"""Errors the accounts API reports; each maps to a 4xx (or 503) in the JSON error shape."""

from __future__ import annotations

from backend.core.errors import N_, AppError, Conflict, NotFound, ServiceUnavailable


class EmailTaken(Conflict):
    code = "email_taken"


class AddressTaken(Conflict):
    code = "address_taken"


class InvalidCredentials(AppError):
    status = 401
    code = "invalid_credentials"


class AuthenticationRequired(AppError):
    status = 401
    code = "authentication_required"


class PasswordRequired(AppError):
    """A signed-in account with a password tried to link (or confirm) a wallet without it."""

    status = 403
    code = "password_required"


class SiweFailed(AppError):
    """A Sign-In with Ethereum attempt was refused; ``details.reason`` says why."""

    status = 401
    code = "siwe_rejected"

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(
            message or _SIWE_MESSAGES.get(reason, N_("Sign-in was refused.")), reason=reason
        )
        if reason in ("malformed", "nonce_missing"):
            self.status = 400
        elif reason == "wallet_paused":  # the signature is good; this wallet may not sign in
            self.status = 403


_SIWE_MESSAGES = {
    "malformed": N_("The sign-in message is not a valid EIP-4361 message."),
    "domain_mismatch": N_("The sign-in message was made for another site."),
    "uri_mismatch": N_("The sign-in message names a web address that is not this site's."),
    "chain_mismatch": N_("The sign-in message names another chain."),
    "nonce_mismatch": N_("The sign-in message does not carry the nonce issued to you."),
    "nonce_missing": N_("No sign-in nonce was issued to this session; request one first."),
    "nonce_used": N_("This sign-in nonce has expired or was already used; request a new one."),
    "expired": N_("The sign-in message has expired."),
    "not_yet_valid": N_("The sign-in message is not valid yet."),
    "bad_signature": N_("The signature does not match the sign-in message."),
    "wallet_paused": N_(
        "This wallet no longer signs in since the account's password was reset. Log in with "
        "your email address and password, then confirm the wallet on My page."
    ),
}


class WalletNotLinked(NotFound):
    code = "wallet_not_linked"


class NoCustodialWallet(NotFound):
    code = "no_custodial_wallet"


class CustodyUnavailable(ServiceUnavailable):
    code = "custody_unavailable"

// Sign-In with Ethereum for people who bring their own wallet (EIP-1193 provider, EIP-4361).
// The server builds the exact message (checksummed address, nonce, domain, chain id, expiry);
// the wallet signs it with personal_sign; the server verifies and starts the session.
const box = document.querySelector("[data-siwe]");
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function signIn() {
  const status = box.querySelector("[data-siwe-status]");
  status.textContent = status.dataset.msgWorking;
  try {
    const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
    const nonceResp = await fetch(`/api/auth/siwe/nonce?address=${encodeURIComponent(address)}`, {
      credentials: "same-origin",
    });
    if (!nonceResp.ok) throw new Error((await nonceResp.json()).error.message);
    const { message } = await nonceResp.json();
    const hex = "0x" + Array.from(new TextEncoder().encode(message),
      (b) => b.toString(16).padStart(2, "0")).join("");
    const signature = await window.ethereum.request({
      method: "personal_sign", params: [hex, address],
    });
    const verify = await fetch("/api/auth/siwe/verify", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify({ message, signature }),
    });
    if (!verify.ok) {
      const { error } = await verify.json();
      // Signed in with a password already: a new wallet is linked on Your wallets, with the
      // password (docs/adr/0027).
      if (error.code === "password_required") { window.location.assign("/me/wallets"); return; }
      throw new Error(error.message);
    }
    window.location.assign(box.dataset.next || "/me");
  } catch (err) {
    status.textContent = `${status.dataset.msgFailed} ${err && err.message ? err.message : ""}`;
  }
}

if (box && window.ethereum) {
  box.hidden = false;
  box.querySelector("[data-siwe-button]").addEventListener("click", signIn);
}

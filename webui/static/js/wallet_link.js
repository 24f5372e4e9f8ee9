// Linking one's own wallet on /me/wallets, or confirming one that a password reset paused: the
// wallet signs the server's EIP-4361 message (personal_sign), and the form then posts message,
// signature and the password together, so the server checks both in one request (ADR 0027).
const form = document.querySelector("[data-wallet-link]");

async function sign(event) {
  event.preventDefault();
  const status = form.querySelector("[data-wallet-status]");
  status.textContent = status.dataset.msgWorking;
  try {
    const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
    const resp = await fetch(`/api/auth/siwe/nonce?address=${encodeURIComponent(address)}`, {
      credentials: "same-origin",
    });
    if (!resp.ok) throw new Error((await resp.json()).error.message);
    const { message } = await resp.json();
    const hex = "0x" + Array.from(new TextEncoder().encode(message),
      (b) => b.toString(16).padStart(2, "0")).join("");
    const signature = await window.ethereum.request({
      method: "personal_sign", params: [hex, address],
    });
    form.elements.message.value = message;
    form.elements.signature.value = signature;
    form.submit();
  } catch (err) {
    status.textContent = `${status.dataset.msgFailed} ${err && err.message ? err.message : ""}`;
  }
}

if (form && window.ethereum) {
  form.hidden = false;
  document.querySelector("[data-no-wallet]").hidden = true;
  form.addEventListener("submit", sign);
}

// Buy with test yen from the user's own wallet (EIP-1193, eth_signTypedData_v4): the server
// prepares an ERC-20 permit, then the ERC-2771 forward request for PrimarySale.buyWithPermit;
// the wallet signs both; the server checks them and relays the purchase (no gas for the user).
(function () {
  "use strict";
  var csrf = function () { return document.querySelector('meta[name="csrf-token"]').content; };

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error(j && j.error ? j.error.message : String(r.status));
        return j;
      });
    });
  }

  function signTyped(address, typed) {
    return window.ethereum.request({
      method: "eth_signTypedData_v4", params: [address, JSON.stringify(typed)],
    });
  }

  async function buy(box, button) {
    var status = box.querySelector("[data-wallet-status]");
    if (!window.ethereum) { status.textContent = box.dataset.msgNoWallet; return; }
    button.disabled = true;
    status.textContent = box.dataset.msgWorking;
    var address = box.dataset.address;
    var base = {
      listing_id: parseInt(box.dataset.listing, 10),
      quantity: parseInt(box.querySelector("[data-wallet-quantity]").value, 10),
      address: address,
    };
    try {
      var p = await post("/api/shop/wallet-orders/permit", base);
      var permit = Object.assign({}, p.permit, { signature: await signTyped(address, p.typed_data) });
      var f = await post("/api/shop/wallet-orders/forward-request", Object.assign({}, base, { permit: permit }));
      var signature = await signTyped(address, f.typed_data);
      status.textContent = box.dataset.msgSending;
      var placed = await post("/api/shop/wallet-orders", Object.assign({}, base, {
        idempotency_key: box.dataset.key,
        permit: permit,
        forward_request: Object.assign({}, f.forward_request, { signature: signature }),
      }));
      window.location.assign(placed.redirect_url);
    } catch (err) {
      status.textContent = box.dataset.msgFailed + " " + (err && err.message ? err.message : "");
      button.disabled = false;
    }
  }

  document.querySelectorAll("[data-wallet-buy]").forEach(function (box) {
    var button = box.querySelector("[data-buy=wallet]");
    button.addEventListener("click", function () { buy(box, button); });
  });
})();

// Gasless votes for people who signed in with their own wallet (SIWE): the server prepares the
// EIP-712 Ballot, the wallet signs it (eth_signTypedData_v4), the server checks the signature
// and relays castVoteBySig. Used by the confirmation step of a vote (dao/confirm.html: a form with data-wallet="external").
(function () {
  "use strict";
  var csrf = function () { return document.querySelector('meta[name="csrf-token"]').content; };

  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { throw new Error((data.error && data.error.message) || String(r.status)); }
        return data;
      });
    });
  }

  function vote(form, value) {
    var status = form.querySelector("[data-wallet-status]");
    var field = form.getAttribute("data-field");
    var say = function (text) { status.hidden = false; status.textContent = text; };
    if (!window.ethereum) { say(status.dataset.msgNoWallet); return; }
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    var choice = {};
    choice[field] = value;
    say(status.dataset.msgSign);
    postJson(form.dataset.ballotUrl, choice)
      .then(function (prepared) {
        return window.ethereum.request({
          method: "eth_signTypedData_v4",
          params: [prepared.voter, JSON.stringify(prepared.typed_data)],
        });
      })
      .then(function (signature) {
        say(status.dataset.msgSending);
        choice.signature = signature;
        return postJson(form.dataset.voteUrl, choice);
      })
      .then(function () {
        // The confirmation page goes back to the proposal or poll, which says what was chosen.
        if (form.dataset.doneUrl) { window.location.assign(form.dataset.doneUrl); }
        else { window.location.reload(); }
      })
      .catch(function (err) {
        say(status.dataset.msgFailed + " " + (err && err.message ? err.message : ""));
        buttons.forEach(function (b) { b.disabled = false; });
      });
  }

  document.querySelectorAll('form[data-wallet="external"]').forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var field = form.getAttribute("data-field");
      var value = ev.submitter && ev.submitter.name === field ? ev.submitter.value : null;
      if (value === null) {
        var checked = form.querySelector('input[name="' + field + '"]:checked') ||
          form.querySelector('input[type="hidden"][name="' + field + '"]');
        value = checked ? checked.value : null;
      }
      if (value === null) { return; }
      vote(form, /^\d+$/.test(value) ? Number(value) : value);
    });
    // Ready: buttons rendered disabled until the submit above signs the ballot (confirm.html).
    form.querySelectorAll("button[data-wallet-wait]").forEach(function (b) { b.disabled = false; });
  });
})();

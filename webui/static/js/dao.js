// Live results: poll the results JSON every few seconds; reload when the proposal moves on.
(function () {
  "use strict";
  var box = document.getElementById("dao-results");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var state = box.getAttribute("data-state");
  var executed = box.getAttribute("data-executed");
  var payouts = box.getAttribute("data-payouts");
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        ["for", "against", "abstain"].forEach(function (k) {
          var el = box.querySelector('[data-count="' + k + '"]');
          if (el && String(data.votes[k]) !== el.textContent) { el.textContent = String(data.votes[k]); }
        });
        var busy = document.getElementById("dao-processing");
        if (busy) { busy.hidden = !data.votes_processing; }
        if (data.state !== state || (data.executed_tx_hash || "") !== executed ||
            String(data.payouts.length) !== payouts) {
          window.location.reload();
        }
      })
      .catch(function () { /* try again at the next tick */ });
  }
  window.setInterval(tick, 3000);
})();

// Town staff's shop list: while a shop is registering on chain, poll the town's shops (JSON)
// and switch its status label when the chain has confirmed it; a registration that failed
// reloads the page, which shows why and the button that registers the shop again.
(function () {
  "use strict";
  // The CSP refuses inline handlers (onclick): print buttons are wired here.
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  // A double tap registers one shop: the button is disabled once the form is sent.
  document.querySelectorAll("form.form").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) setTimeout(function () { button.disabled = true; }, 0);
    });
  });
  var box = document.querySelector("[data-poll-shops]");
  if (!box) return;
  var url = box.getAttribute("data-poll-shops");
  function waiting() {
    return box.querySelectorAll('[data-shop-status="registering"]').length > 0;
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        var failed = false;
        (body && body.merchants || []).forEach(function (m) {
          var el = box.querySelector('[data-shop-id="' + m.id + '"]');
          if (!el || el.getAttribute("data-shop-status") === m.status) return;
          if (m.status === "failed") failed = true;
          var label = el.getAttribute("data-label-" + m.status);
          if (!label) return;
          el.textContent = label;
          el.className = "muted";
          el.setAttribute("data-shop-status", m.status);
        });
        if (failed) { window.location.reload(); return; }
        if (waiting()) setTimeout(tick, 1500);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  if (waiting()) setTimeout(tick, 1500);
})();

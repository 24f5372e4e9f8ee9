// The console's points settings: while a change is being set on chain ("queued"), poll the
// town's settings (JSON) and switch its label when the chain has confirmed it (or refused it).
(function () {
  "use strict";
  // A double tap sends one change: the button is disabled once the form is sent.
  document.querySelectorAll("form.form").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) setTimeout(function () { button.disabled = true; }, 0);
    });
  });
  var box = document.querySelector("[data-poll-settings]");
  if (!box) return;
  var url = box.getAttribute("data-poll-settings");
  function waiting() {
    return box.querySelectorAll('[data-setting-status="queued"]').length > 0;
  }
  function states(body) {
    var out = {};
    (body && body.programmes || []).forEach(function (p) { out[String(p.programme_id)] = p.status; });
    var policy = body && body.transfer_policy;
    if (policy && policy.last_change) out.policy = policy.last_change.status;
    return out;
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        var now = states(body);
        box.querySelectorAll("[data-setting-id]").forEach(function (el) {
          var status = now[el.getAttribute("data-setting-id")];
          if (!status || el.getAttribute("data-setting-status") === status) return;
          var label = el.getAttribute("data-label-" + status);
          if (!label) return;
          el.textContent = label;
          el.className = "state state-" + status;
          el.setAttribute("data-setting-status", status);
        });
        if (waiting()) setTimeout(tick, 1500);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  if (waiting()) setTimeout(tick, 1500);
})();

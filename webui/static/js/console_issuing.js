// Issuing points: a form is sent once (the button is disabled after the first submit), and an
// issuance on its way polls its JSON status to move the progress bar and each row's result,
// until the chain has confirmed (or failed) every row. Without JS the page refreshes itself.
(function () {
  "use strict";
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) setTimeout(function () { button.disabled = true; }, 0);
    });
  });
  var box = document.querySelector("[data-issuance-poll]");
  if (!box) return;
  var url = box.getAttribute("data-issuance-poll");
  var inFlight = ["confirmed", "approved", "sending"];
  var stateLabels = JSON.parse(box.getAttribute("data-state-labels") || "{}");
  function flying(state) { return inFlight.indexOf(state) >= 0; }
  function render(b) {
    var stateEl = box.querySelector("[data-testid=batch-state]");
    if (stateEl && stateEl.getAttribute("data-state") !== b.state) {
      stateEl.textContent = stateLabels[b.state] || b.state;
      stateEl.setAttribute("data-state", b.state);
    }
    box.setAttribute("data-state", b.state);
    var p = b.progress;
    var bar = box.querySelector("progress");
    if (bar) { bar.value = p.percent; bar.textContent = p.percent + "%"; }
    var done = box.querySelector("[data-done]");
    if (done) done.textContent = String(p.confirmed);
    var all = box.querySelector("[data-all]");
    if (all) all.textContent = String(p.queued + p.sent + p.confirmed + p.failed);
    var failed = box.querySelector("[data-failed]");
    if (failed) {
      failed.hidden = p.failed === 0;
      var n = failed.querySelector("[data-failed-count]");
      if (n) n.textContent = String(p.failed);
    }
    (b.rows || []).forEach(function (r) {
      var tr = box.querySelector('tr[data-line="' + r.line + '"]');
      if (!tr) return;
      var st = tr.querySelector("[data-row-status]");
      if (st && st.getAttribute("data-row-status") !== r.status) {
        st.textContent = box.getAttribute("data-label-" + r.status) || r.status;
        st.className = "row-status row-" + r.status;
        st.setAttribute("data-row-status", r.status);
      }
      var err = tr.querySelector("[data-row-error]");
      if (err && r.error && err.textContent !== r.error) {
        err.textContent = r.error;
        err.hidden = false;
      }
    });
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.issuance) render(body.issuance);
        if (flying(box.getAttribute("data-state"))) setTimeout(tick, 1500);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  if (flying(box.getAttribute("data-state"))) setTimeout(tick, 1000);
})();

// The town setup's progress page: polls the JSON status and shows each step's state
// (queued -> sent -> confirmed) until the town is live or a step failed.
(function () {
  "use strict";
  const root = document.getElementById("town-setup");
  if (!root) return;
  const labels = JSON.parse(root.dataset.labels || "{}");
  const url = root.dataset.statusUrl;

  function render(data) {
    const state = document.getElementById("setup-state");
    state.dataset.state = data.state;
    state.textContent = labels[data.state] || data.state;
    document.getElementById("setup-count").textContent = data.confirmed + "/" + data.total;
    const bar = document.getElementById("setup-progress");
    bar.max = data.total;
    bar.value = data.confirmed;
    for (const step of data.steps) {
      const li = root.querySelector('li[data-step="' + CSS.escape(step.name) + '"]');
      if (!li) continue;
      li.dataset.state = step.state;
      li.querySelector(".state").textContent = labels[step.state] || step.state;
    }
    document.getElementById("setup-live").hidden = data.state !== "live";
  }

  async function poll() {
    try {
      const res = await fetch(url, { headers: { Accept: "application/json" } });
      if (res.ok) {
        const data = await res.json();
        render(data);
        if (data.state !== "running") {
          if (data.state === "failed") window.location.reload();
          return;
        }
      }
    } catch (e) {
      // the network blinked: try again on the next tick
    }
    window.setTimeout(poll, 1500);
  }
  window.setTimeout(poll, 1000);
})();

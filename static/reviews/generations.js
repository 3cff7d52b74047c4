/* The staff generations page: poll the progress of unfinished generations until they finish. */
(function () {
  "use strict";

  const table = document.querySelector("table.generations");
  if (!table) return;
  const url = table.dataset.progressUrl;
  const status = document.getElementById("poll-status");
  const INTERVAL_MS = 1500;

  function pendingRows() {
    return Array.from(table.querySelectorAll("tr[data-generation]")).filter((row) =>
      ["queued", "running"].includes(row.dataset.status)
    );
  }

  function apply(row, data) {
    row.dataset.status = data.status;
    const cell = row.querySelector(".status");
    cell.className = `status status-${data.status}`;
    cell.textContent = data.status_label + (data.error ? `: ${data.error}` : "");
    const bar = row.querySelector("progress");
    bar.value = data.progress;
    bar.textContent = `${Math.round(data.progress * 100)}%`;
    row.querySelector(".percent").textContent = `${Math.round(data.progress * 100)}%`;
    const workerCell = row.querySelector(".worker");
    if (workerCell && data.worker) workerCell.textContent = data.worker;
    const videoCell = row.querySelector(".video-cell");
    if (data.video_url && !videoCell.querySelector("a")) {
      const link = document.createElement("a");
      link.href = data.video_url;
      link.textContent = "Watch";
      videoCell.appendChild(link);
    }
  }

  async function poll() {
    const rows = pendingRows();
    if (!rows.length) {
      if (status) status.textContent = "All generations have finished.";
      return;
    }
    const query = rows.map((row) => `id=${encodeURIComponent(row.dataset.generation)}`).join("&");
    try {
      const response = await fetch(`${url}?${query}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      body.generations.forEach((data) => {
        const row = table.querySelector(`tr[data-generation="${data.id}"]`);
        if (row) apply(row, data);
      });
    } catch (error) {
      if (status) status.textContent = "Live progress is unavailable; retrying.";
    }
    setTimeout(poll, INTERVAL_MS);
  }

  if (pendingRows().length) setTimeout(poll, INTERVAL_MS);
})();

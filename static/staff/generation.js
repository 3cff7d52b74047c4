/* The staff generation page: one player, every reviewer's issue marks on lanes below it (they
 * seek the video), and the per-frame plots loaded after the page (measured on first request). */
(function () {
  "use strict";

  const root = document.getElementById("player");
  const player = root && window.FeedbackPlayer ? window.FeedbackPlayer.create(root) : null;
  if (player) player.bindShortcuts(null);

  function duration() {
    const lanes = document.querySelector(".lanes");
    const known = player ? player.duration() : 0;
    return known || (lanes ? parseFloat(lanes.dataset.duration) : 0) || 1;
  }

  /* Positions as a share of the lane, never past its end (CSSOM: allowed under the CSP). */
  function placeMarks() {
    const total = duration();
    document.querySelectorAll(".lane-markers .marker").forEach((mark) => {
      const start = Math.min(Math.max(parseFloat(mark.dataset.start) || 0, 0), total);
      const end = Math.min(Math.max(parseFloat(mark.dataset.end) || start, start), total);
      const left = (100 * start) / total;
      mark.style.left = `${Math.min(left, 97)}%`;
      mark.style.width = `${Math.min((100 * (end - start)) / total, 100 - left)}%`;
    });
  }
  placeMarks();
  if (player) player.leader.addEventListener("loadedmetadata", placeMarks);

  document.addEventListener("click", (event) => {
    const target = event.target.closest(".lane-markers .marker, .seek-to");
    if (!target || !player) return;
    player.pause();
    player.seek(parseFloat(target.dataset.start) || 0);
    player.play();
  });

  const series = document.getElementById("series");
  if (series && series.dataset.url) {
    const status = series.querySelector(".series-status");
    if (status) status.textContent = "Measuring the video frame by frame…";
    fetch(series.dataset.url, { credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.text();
      })
      .then((html) => {
        series.innerHTML = html;
      })
      .catch(() => {
        if (status) status.textContent = "The per-frame plots could not be loaded; reload the page to try again.";
      });
  }
})();

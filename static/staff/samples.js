/* A proposal's page: the parent's and the proposal's sample videos played in sync. */
(function () {
  "use strict";

  const root = document.getElementById("player");
  if (!root || !window.FeedbackPlayer) return;
  window.FeedbackPlayer.create(root).bindShortcuts(null);
})();

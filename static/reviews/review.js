/* The review page: keyboard ratings, timestamped issues with timeline markers, and drafts.
 *
 * Nothing typed is lost: every change is copied to localStorage at once and sent to the server
 * as a draft a moment later (and every few seconds while unsent, and when the page is hidden).
 * On opening the page the newer of the two copies is restored.
 */
(function () {
  "use strict";

  const form = document.getElementById("review-form");
  if (!form) return;
  const player = window.FeedbackPlayer.create(document.getElementById("player"));
  const issuesBox = document.getElementById("issues");
  const template = document.getElementById("issue-template");
  const totalForms = form.querySelector('input[name="issues-TOTAL_FORMS"]');
  const markers = document.getElementById("markers");
  const draftStatus = document.getElementById("draft-status");
  const submitButton = document.getElementById("submit-review");
  const addButton = document.getElementById("add-issue");
  const comments = document.getElementById("id_comments");
  const secondsInput = document.getElementById("id_seconds_spent");
  const csrfToken = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  const storageKey = form.dataset.storageKey;
  const draftUrl = form.dataset.draftUrl;
  const groups = Array.from(form.querySelectorAll("fieldset.rating"));
  const fmt = window.FeedbackPlayer.formatTime;
  const DRAFT_DAYS = 14;

  const announcer = document.createElement("p");
  announcer.className = "visually-hidden";
  announcer.setAttribute("aria-live", "polite");
  document.body.appendChild(announcer);
  function announce(text) {
    announcer.textContent = text;
  }

  /* --- time spent (visible time only) ------------------------------------------------------ */

  let secondsBefore = 0;
  let visibleSince = document.hidden ? null : performance.now();
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && visibleSince !== null) {
      secondsBefore += (performance.now() - visibleSince) / 1000;
      visibleSince = null;
    } else if (!document.hidden && visibleSince === null) {
      visibleSince = performance.now();
    }
  });
  function secondsSpent() {
    return secondsBefore + (visibleSince === null ? 0 : (performance.now() - visibleSince) / 1000);
  }

  /* --- ratings ------------------------------------------------------------------------------ */

  function firstUnrated() {
    return groups.find((g) => !g.querySelector("input:checked")) || null;
  }

  function markCurrentGroup() {
    const current = firstUnrated();
    groups.forEach((g) => g.classList.toggle("current", g === current));
  }

  function rate(group, value) {
    const radio = group.querySelector(`input[value="${value}"]`);
    if (!radio) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    const label = group.querySelector("legend").textContent.trim();
    announce(`${label}: ${value}`);
  }

  function focusGroup(group) {
    const radio = group.querySelector("input:checked") || group.querySelector("input");
    radio.focus();
  }

  /* --- issues ------------------------------------------------------------------------------- */

  function rows() {
    return Array.from(issuesBox.querySelectorAll("[data-issue]"));
  }

  function field(row, name) {
    return row.querySelector(`[data-field="${name}"]`);
  }

  function renumber() {
    rows().forEach((row, index) => {
      const n = index + 1;
      row.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach((el) => {
        ["name", "id", "for", "aria-describedby"].forEach((attr) => {
          const value = el.getAttribute(attr);
          if (value) el.setAttribute(attr, value.replace(/issues-(\d+|__prefix__)-/g, `issues-${index}-`));
        });
      });
      row.querySelectorAll(".issue-number").forEach((el) => { el.textContent = String(n); });
      // Names start with the visible text (speech users say what they see), then the issue.
      row.querySelector('[data-action="set-start"]').setAttribute("aria-label", `Set start to current time, issue ${n}`);
      row.querySelector('[data-action="set-end"]').setAttribute("aria-label", `Set end to current time, issue ${n}`);
      row.querySelector('[data-action="seek-start"]').setAttribute("aria-label", `Go to start, issue ${n}`);
    });
    totalForms.value = String(rows().length);
    renderMarkers();
  }

  function addIssue(values) {
    const fragment = template.content.cloneNode(true);
    const row = fragment.querySelector("[data-issue]");
    issuesBox.appendChild(fragment);
    renumber();
    ["category", "severity", "start_s", "end_s", "note"].forEach((name) => {
      if (values[name] !== undefined && values[name] !== null) field(row, name).value = values[name];
    });
    renderMarkers();
    return row;
  }

  function markIssueNow() {
    player.pause();
    const t = fmt(player.currentTime());
    const row = addIssue({ start_s: t, end_s: t });
    field(row, "category").focus();
    announce(`Issue ${rows().length} marked at ${t} seconds. Choose its category.`);
    changed();
  }

  function setEndNow(row) {
    if (!row) return;
    field(row, "end_s").value = fmt(player.currentTime());
    renderMarkers();
    changed();
  }

  issuesBox.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("[data-issue]");
    const action = button.dataset.action;
    if (action === "set-start") {
      field(row, "start_s").value = fmt(player.currentTime());
    } else if (action === "set-end") {
      setEndNow(row);
      return;
    } else if (action === "seek-start") {
      const start = parseFloat(field(row, "start_s").value);
      if (Number.isFinite(start)) {
        player.pause();
        player.seek(start);
      }
      return;
    } else if (action === "remove") {
      const index = rows().indexOf(row);
      row.remove();
      renumber();
      const remaining = rows();
      if (remaining.length) remaining[Math.min(index, remaining.length - 1)].querySelector('[data-action="remove"]').focus();
      else addButton.focus();
      announce("Issue removed.");
    }
    renderMarkers();
    changed();
  });

  addButton.addEventListener("click", markIssueNow);

  /* A time past the video's end cannot be shown on the bar: clamp it there, and say so next
   * to the field (the server refuses it too). */
  function rangeMessage(row, name, value, duration) {
    const input = field(row, name);
    const id = `${input.id}-range`;
    let box = document.getElementById(id);
    const tooLate = Number.isFinite(value) && duration > 0 && value > duration + 1e-3;
    if (!tooLate) {
      if (box) {
        box.remove();
        if (!input.closest(".time-field").parentElement.querySelector(".error:not([data-range])")) input.removeAttribute("aria-invalid");
        input.setAttribute("aria-describedby", (input.getAttribute("aria-describedby") || "").replace(id, "").trim());
        if (!input.getAttribute("aria-describedby")) input.removeAttribute("aria-describedby");
      }
      return;
    }
    if (!box) {
      box = document.createElement("p");
      box.className = "error";
      box.id = id;
      box.dataset.range = "1";
      input.closest(".time-field").after(box);
      input.setAttribute("aria-invalid", "true");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(id)) described.push(id);
      input.setAttribute("aria-describedby", described.join(" "));
    }
    box.textContent = `The video ends at ${fmt(duration)} s; ${fmt(value)} s is past its end.`;
  }

  function renderMarkers() {
    const known = player.duration();
    const duration = known || 1;
    markers.textContent = "";
    rows().forEach((row, index) => {
      const rawStart = parseFloat(field(row, "start_s").value);
      const rawEnd = parseFloat(field(row, "end_s").value);
      rangeMessage(row, "start_s", rawStart, known);
      rangeMessage(row, "end_s", rawEnd, known);
      if (!Number.isFinite(rawStart)) return;
      const start = Math.min(Math.max(rawStart, 0), duration);
      let end = Number.isFinite(rawEnd) ? Math.min(Math.max(rawEnd, 0), duration) : start;
      if (end < start) end = start;
      const category = field(row, "category");
      const name = category.value ? category.options[category.selectedIndex].text : "uncategorised";
      const marker = document.createElement("button");
      marker.type = "button";
      marker.className = "marker";
      marker.dataset.start = String(start);
      // Positions as a share of the bar, never past its end (CSSOM, allowed under the CSP).
      const left = (100 * start) / duration;
      marker.style.left = `${Math.min(left, 97)}%`;
      marker.style.width = `${Math.min((100 * (end - start)) / duration, 100 - left)}%`;
      marker.textContent = String(index + 1);
      marker.setAttribute("aria-label", `Issue ${index + 1}, ${name}, ${fmt(start)} to ${fmt(end)} s: go there`);
      marker.title = `${name} ${fmt(start)}–${fmt(end)} s`;
      markers.appendChild(marker);
    });
  }

  markers.addEventListener("click", (event) => {
    const marker = event.target.closest(".marker");
    if (!marker) return;
    player.pause();
    player.seek(parseFloat(marker.dataset.start));
  });
  player.leader.addEventListener("loadedmetadata", renderMarkers);

  /* --- drafts ------------------------------------------------------------------------------- */

  function collect() {
    const ratings = {};
    groups.forEach((g) => {
      const checked = g.querySelector("input:checked");
      if (checked) ratings[g.dataset.dimension] = checked.value;
    });
    return {
      v: 1,
      saved_at: Date.now(),
      ratings,
      comments: comments.value,
      issues: rows().map((row) => ({
        category: field(row, "category").value,
        severity: field(row, "severity").value,
        start_s: field(row, "start_s").value,
        end_s: field(row, "end_s").value,
        note: field(row, "note").value,
      })),
      position: player.currentTime(),
      seconds_spent: secondsSpent(),
    };
  }

  function restore(data) {
    Object.entries(data.ratings || {}).forEach(([slug, value]) => {
      const group = groups.find((g) => g.dataset.dimension === slug);
      const radio = group && group.querySelector(`input[value="${value}"]`);
      if (radio) radio.checked = true;
    });
    comments.value = typeof data.comments === "string" ? data.comments : "";
    rows().forEach((row) => row.remove());
    (data.issues || []).forEach((issue) => addIssue(issue));
    renumber();
    secondsBefore = Number(data.seconds_spent) || 0;
    const position = Number(data.position) || 0;
    if (position > 0) {
      if (player.leader.readyState >= 1) player.seek(position);
      else player.leader.addEventListener("loadedmetadata", () => player.seek(position), { once: true });
    }
  }

  function readLocal() {
    try {
      return JSON.parse(localStorage.getItem(storageKey) || "null");
    } catch (error) {
      return null;
    }
  }

  function writeLocal(data) {
    try {
      localStorage.setItem(storageKey, JSON.stringify(data));
    } catch (error) {
      /* storage full or disabled: the server copy still works */
    }
  }

  function pruneLocal() {
    const cutoff = Date.now() - DRAFT_DAYS * 24 * 3600 * 1000;
    try {
      Object.keys(localStorage)
        .filter((k) => k.startsWith("feedbackloop.draft.") && k !== storageKey)
        .forEach((k) => {
          const saved = (JSON.parse(localStorage.getItem(k) || "{}") || {}).saved_at || 0;
          if (saved < cutoff) localStorage.removeItem(k);
        });
    } catch (error) {
      /* nothing to prune */
    }
  }

  let dirty = false;
  let saving = false;
  let saveAgain = false;
  let submitting = false;
  let saveTimer = null;
  let lastState = "";

  function showState(state, text) {
    if (state !== lastState) {
      draftStatus.textContent = text;
      lastState = state;
    }
    draftStatus.dataset.state = state;
    draftStatus.title = `${text} (${new Date().toLocaleTimeString()})`;
  }

  let expired = false;
  function sessionExpired() {
    draftStatus.dataset.state = "expired";
    if (expired) return;
    expired = true;
    lastState = "expired";
    const login = `${form.dataset.loginUrl}?next=${encodeURIComponent(window.location.pathname)}`;
    draftStatus.textContent = "Your session has expired, so the server did not get this draft. It is kept in this browser: ";
    const link = document.createElement("a");
    link.href = login;
    link.textContent = "log in again";
    link.id = "login-again";
    draftStatus.appendChild(link);
    draftStatus.appendChild(document.createTextNode(" and this review comes back as you left it."));
  }

  async function saveToServer(keepalive) {
    if (!dirty || submitting) return;
    if (saving) {
      saveAgain = true;
      return;
    }
    saving = true;
    dirty = false;
    const data = collect();
    writeLocal(data);
    try {
      const response = await fetch(draftUrl, {
        method: "POST",
        credentials: "same-origin",
        keepalive: Boolean(keepalive),
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify({ data }),
      });
      if (response.status === 401 || response.status === 403) {
        // Logged out (the session lapsed, or the user logged out in another tab): say so, and
        // keep the local copy; the page restores it after logging in again.
        dirty = true;
        sessionExpired();
        return;
      }
      if (!response.ok && response.status !== 409) throw new Error(`HTTP ${response.status}`);
      expired = false;
      showState("saved", "Draft saved automatically.");
    } catch (error) {
      dirty = true;
      showState("failed", "Draft kept in this browser only: the server could not be reached. Retrying…");
    } finally {
      saving = false;
      if (saveAgain) {
        saveAgain = false;
        saveToServer(false);
      }
    }
  }

  function changed() {
    if (submitting) return;
    dirty = true;
    writeLocal(collect());
    markCurrentGroup();
    clearTimeout(saveTimer);
    saveTimer = setTimeout(() => saveToServer(false), 800);
  }

  form.addEventListener("input", (event) => {
    if (event.target.closest("[data-issue]")) renderMarkers();
    changed();
  });
  form.addEventListener("change", changed);
  setInterval(() => { if (dirty && !expired) saveToServer(false); }, 5000);
  window.addEventListener("pagehide", () => { if (dirty) saveToServer(true); });
  document.addEventListener("visibilitychange", () => { if (document.hidden && dirty) saveToServer(true); });

  /* --- submit: once ------------------------------------------------------------------------- */

  form.addEventListener("submit", (event) => {
    if (submitting) {
      event.preventDefault();
      return;
    }
    submitting = true;
    clearTimeout(saveTimer);
    secondsInput.value = secondsSpent().toFixed(1);
    writeLocal(collect()); // kept until the review is saved, in case the request fails
    submitButton.disabled = true;
    submitButton.textContent = "Saving…";
  });
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      submitting = false;
      submitButton.disabled = false;
      submitButton.textContent = "Submit review and open the next video";
    }
  });

  /* --- keys --------------------------------------------------------------------------------- */

  player.bindShortcuts((event, target, typing) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      form.requestSubmit();
      return true;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return false;
    if (/^[1-5]$/.test(event.key)) {
      const inGroup = target.closest && target.closest("fieldset.rating");
      const group = inGroup || firstUnrated();
      if (!group) return false;
      rate(group, event.key);
      if (inGroup) {
        const next = groups[groups.indexOf(group) + 1];
        if (next) focusGroup(next);
        else addButton.focus();
      }
      return true;
    }
    if (event.key === "i" || event.key === "I") {
      markIssueNow();
      return true;
    }
    if (event.key === "e" || event.key === "E") {
      const all = rows();
      if (!all.length) return false;
      setEndNow(all[all.length - 1]);
      announce(`Issue ${all.length} ends at ${fmt(player.currentTime())} seconds.`);
      return true;
    }
    return false;
  });

  /* --- start -------------------------------------------------------------------------------- */

  renumber();
  pruneLocal();
  // Back with errors: put the keyboard on the first field to fix.
  const firstInvalid = form.querySelector('[aria-invalid="true"]');
  if (firstInvalid) firstInvalid.focus();
  if (form.dataset.restore === "1") {
    const server = JSON.parse(document.getElementById("draft-data").textContent || "{}");
    const serverData = server && server.data && typeof server.data === "object" ? server.data : null;
    const localData = readLocal();
    const newest = [serverData, localData]
      .filter((d) => d && typeof d === "object")
      .sort((a, b) => (b.saved_at || 0) - (a.saved_at || 0))[0];
    if (newest) {
      restore(newest);
      showState("restored", "Your unsent review was restored.");
      if (newest !== serverData) {
        dirty = true; // the server has an older copy (or none): send this one
        saveToServer(false);
      }
    }
  }
  markCurrentGroup();
})();

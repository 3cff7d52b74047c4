/* feedbackloop player: one video, or several kept in sync (the first one leads).
 *
 * Frame accuracy: the generation's fps comes from the server; a frame step pauses and seeks to
 * the middle of the wanted frame, so rounding of the media clock can never show its neighbour.
 * The frame shown is floor(currentTime * fps).
 */
(function () {
  "use strict";

  const RATES = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2];
  const DRIFT_LIMIT_S = 0.06;
  const HAVE_FUTURE_DATA = 3;

  function clamp(value, low, high) {
    return Math.min(Math.max(value, low), high);
  }

  function formatTime(t) {
    return (Math.round(t * 1000) / 1000).toFixed(3);
  }

  /* Keys typed here are text, not shortcuts. */
  function isTyping(el) {
    if (!el || !el.matches) return false;
    if (el.isContentEditable) return true;
    if (el.matches("textarea, select")) return true;
    return el.matches("input") && !el.matches(
      "[type=radio], [type=checkbox], [type=range], [type=button], [type=submit], [type=reset]"
    );
  }

  class Player {
    constructor(root) {
      this.root = root;
      this.videos = Array.from(root.querySelectorAll("video"));
      this.leader = this.videos[0];
      this.fps = parseFloat(root.dataset.fps) || 25;
      this.knownDuration = parseFloat(root.dataset.duration) || 0;
      this.seekBar = root.querySelector(".seek");
      this.playButton = root.querySelector('[data-action="toggle"]');
      this.speed = root.querySelector(".speed");
      this.timeText = root.querySelector(".time");
      this.frameText = root.querySelector(".frame");
      this.framesText = root.querySelector("#frames");
      this.durationText = root.querySelector("#duration");
      this.wantPlaying = false;
      this.holding = false;
      this.listeners = [];
      this.seekBar.step = (1 / this.fps).toFixed(6);
      this.bindControls();
      this.bindMedia();
      setInterval(() => this.keepInSync(), 200);
      this.update();
    }

    /* --- state ---------------------------------------------------------------------------- */

    duration() {
      const known = this.videos
        .map((v) => v.duration)
        .filter((d) => Number.isFinite(d) && d > 0);
      return known.length ? Math.max(...known) : this.knownDuration;
    }

    currentTime() {
      return this.leader.currentTime;
    }

    frameAt(t) {
      return Math.floor(t * this.fps + 1e-6);
    }

    frameCount() {
      return Math.max(1, Math.round(this.duration() * this.fps));
    }

    isPlaying() {
      return this.wantPlaying;
    }

    onTime(callback) {
      this.listeners.push(callback);
    }

    /* --- commands (every one acts on all videos) ------------------------------------------ */

    play() {
      if (this.leader.ended || this.currentTime() >= this.duration() - 1e-3) this.seek(0);
      this.wantPlaying = true;
      this.videos.forEach((v) => {
        if (!v.ended || v === this.leader) v.play().catch(() => {});
      });
      this.update();
    }

    pause() {
      this.wantPlaying = false;
      this.holding = false;
      this.videos.forEach((v) => v.pause());
      this.alignFollowers();
      this.update();
    }

    toggle() {
      if (this.wantPlaying) this.pause();
      else this.play();
    }

    seek(t) {
      const target = clamp(t, 0, this.duration());
      this.videos.forEach((v) => {
        const end = Number.isFinite(v.duration) ? v.duration : target;
        v.currentTime = Math.min(target, end);
      });
      this.update();
    }

    seekBy(seconds) {
      this.seek(this.currentTime() + seconds);
    }

    seekToFrame(frame) {
      const last = this.frameCount() - 1;
      this.seek((clamp(frame, 0, last) + 0.5) / this.fps);
    }

    stepFrame(delta) {
      this.pause();
      this.seekToFrame(this.frameAt(this.currentTime()) + delta);
    }

    setRate(rate) {
      const r = clamp(rate, RATES[0], RATES[RATES.length - 1]);
      this.videos.forEach((v) => {
        v.playbackRate = r;
        v.defaultPlaybackRate = r;
      });
      this.speed.value = String(r);
      this.update();
    }

    changeRate(direction) {
      const current = this.leader.playbackRate;
      const index = RATES.findIndex((r) => Math.abs(r - current) < 1e-6);
      const next = clamp((index < 0 ? RATES.indexOf(1) : index) + direction, 0, RATES.length - 1);
      this.setRate(RATES[next]);
    }

    /* --- sync ----------------------------------------------------------------------------- */

    followers() {
      return this.videos.filter((v) => v !== this.leader);
    }

    alignFollowers() {
      const t = this.currentTime();
      this.followers().forEach((v) => {
        const end = Number.isFinite(v.duration) ? v.duration : t;
        if (Math.abs(v.currentTime - Math.min(t, end)) > 1e-3) v.currentTime = Math.min(t, end);
      });
    }

    keepInSync() {
      if (this.videos.length < 2 || !this.wantPlaying) return;
      // A video that ran out of data holds the others until it can play again.
      const starving = this.videos.some((v) => !v.ended && !v.seeking && v.readyState < HAVE_FUTURE_DATA);
      if (starving && !this.holding) {
        this.holding = true;
        this.videos.forEach((v) => v.pause());
        return;
      }
      if (!starving && this.holding) {
        this.holding = false;
        this.videos.forEach((v) => { if (!v.ended) v.play().catch(() => {}); });
      }
      const t = this.currentTime();
      this.followers().forEach((v) => {
        if (v.ended || t >= v.duration) return;
        if (Math.abs(v.currentTime - t) > DRIFT_LIMIT_S) v.currentTime = t;
        if (v.paused && !this.holding) v.play().catch(() => {});
      });
    }

    /* --- wiring --------------------------------------------------------------------------- */

    bindControls() {
      this.root.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-action]");
        if (!button || !this.root.contains(button)) return;
        const action = button.dataset.action;
        if (action === "toggle") this.toggle();
        else if (action === "back") this.seekBy(-1);
        else if (action === "forward") this.seekBy(1);
        else if (action === "frame-back") this.stepFrame(-1);
        else if (action === "frame-forward") this.stepFrame(1);
      });
      const scrub = () => {
        // The bar moves in whole frames; land in the middle of the frame it points at.
        const value = parseFloat(this.seekBar.value);
        const frame = Math.round(value * this.fps);
        if (value >= this.duration() - 1e-6) this.seek(this.duration());
        else this.seekToFrame(frame);
      };
      this.seekBar.addEventListener("input", scrub);
      this.seekBar.addEventListener("change", scrub);
      this.speed.addEventListener("change", () => this.setRate(parseFloat(this.speed.value)));
    }

    /* The longest video leads, so playing together ends when the last one ends. */
    chooseLeader() {
      const longest = this.videos.reduce((best, v) =>
        (Number.isFinite(v.duration) ? v.duration : 0) > (Number.isFinite(best.duration) ? best.duration : 0) ? v : best
      );
      if (longest !== this.leader) {
        const t = this.leader.currentTime;
        this.leader = longest;
        if (Math.abs(longest.currentTime - t) > 1e-3) longest.currentTime = t;
      }
    }

    bindMedia() {
      this.videos.forEach((v) => {
        ["loadedmetadata", "durationchange"].forEach((name) =>
          v.addEventListener(name, () => {
            this.chooseLeader();
            this.update();
          })
        );
        ["timeupdate", "seeked", "pause", "play"].forEach((name) =>
          v.addEventListener(name, () => { if (v === this.leader) this.update(); })
        );
        v.addEventListener("ended", () => {
          if (v !== this.leader) return;
          this.wantPlaying = false;
          this.videos.forEach((other) => other.pause());
          this.update();
        });
        v.addEventListener("error", () => this.showError(v));
      });
      const tick = () => {
        if (!this.leader.paused) this.update();
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }

    showError(video) {
      let box = this.root.querySelector(".player-error");
      if (!box) {
        box = document.createElement("p");
        box.className = "player-error error";
        box.setAttribute("role", "alert");
        this.root.prepend(box);
      }
      const code = video.error ? video.error.code : 0;
      box.textContent = code === 4
        ? "This browser cannot play this video's format."
        : "The video could not be loaded. Reload the page to try again.";
    }

    update() {
      const t = this.currentTime();
      const duration = this.duration();
      const frame = this.frameAt(t);
      this.timeText.textContent = formatTime(t);
      this.frameText.textContent = String(frame);
      this.framesText.textContent = String(this.frameCount());
      this.durationText.textContent = formatTime(duration);
      if (duration > 0 && parseFloat(this.seekBar.max) !== duration) this.seekBar.max = String(duration);
      // The bar shows the start of the frame on screen, so its arrow keys move one frame.
      this.seekBar.value = String(frame / this.fps);
      this.seekBar.setAttribute("aria-valuetext", `${formatTime(t)} s, frame ${frame}`);
      const playing = this.wantPlaying;
      this.playButton.textContent = playing ? "Pause" : "Play";
      this.root.classList.toggle("is-playing", playing);
      this.listeners.forEach((callback) => callback(t, duration));
    }

    /* Space, arrows, , . [ ] — and a page's own keys first (return true when handled). */
    bindShortcuts(pageKeys) {
      document.addEventListener("keydown", (event) => {
        if (event.defaultPrevented) return;
        const target = event.target;
        // Escape leaves any control, so the page's shortcuts apply again.
        if (event.key === "Escape" && target !== document.body && target.blur) {
          target.blur();
          return;
        }
        if (pageKeys && pageKeys(event, target, isTyping(target))) {
          event.preventDefault();
          return;
        }
        if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) return;
        const onControl = target.matches && target.matches(
          "button, a, summary, input[type=radio], input[type=checkbox]"
        );
        let handled = true;
        switch (event.key) {
          case " ":
            if (onControl) return;
            this.toggle();
            break;
          case "ArrowLeft":
          case "ArrowRight":
            if (target.matches && target.matches("input[type=radio], input[type=range]")) return;
            this.seekBy((event.key === "ArrowLeft" ? -1 : 1) * (event.shiftKey ? 5 : 1));
            break;
          case ",":
          case "<":
            this.stepFrame(-1);
            break;
          case ".":
          case ">":
            this.stepFrame(1);
            break;
          case "[":
            this.changeRate(-1);
            break;
          case "]":
            this.changeRate(1);
            break;
          default:
            handled = false;
        }
        if (handled) event.preventDefault();
      });
    }
  }

  window.FeedbackPlayer = {
    create: (root) => new Player(root),
    isTyping,
    formatTime,
  };
})();

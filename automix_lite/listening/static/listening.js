/* automix-lite listening test (MUSHRA and APE), written for automix_lite.listening (MIT licence).
 *
 * Reads window.LT_CONFIG (config.js), decodes every stimulus into a Web Audio AudioBuffer after the
 * participant's first click, and runs: instructions and form -> training page -> the test pages in a random
 * order (stimuli in a random order) -> final comment -> CSV / JSON download. The orders come from a PRNG
 * seeded with the session id. State the browser tests read: #app[data-view], #page[data-kind,
 * data-trial, data-page-index], #playhead[data-time, data-playing, data-state, data-switches,
 * data-switch-from, data-switch-to], #message[data-refusals], .rating[data-button, data-score, data-moved].
 */
(function () {
  "use strict";

  var C = window.LT_CONFIG;
  var XFADE = 0.005; // seconds of cross-fade when switching stimuli
  var LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  var LABELS = [["Excellent", 80, 100], ["Good", 60, 80], ["Fair", 40, 60], ["Poor", 20, 40], ["Bad", 0, 20]];

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* ---------------- session id and seeded randomness ---------------- */

  function newSessionId() {
    var bytes = new Uint8Array(8);
    if (window.crypto && window.crypto.getRandomValues) window.crypto.getRandomValues(bytes);
    else for (var i = 0; i < 8; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function sessionFromUrl() {
    var m = /[?&]session=([A-Za-z0-9_-]{1,64})/.exec(window.location.search);
    return m ? m[1] : null;
  }

  // 32-bit FNV-1a hash of a string: the seed.
  function hash32(text) {
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  // A small PRNG: Weyl sequence stepped through an integer mixer; returns floats in [0, 1).
  function makeRandom(seed) {
    var state = seed >>> 0;
    return function () {
      state = (state + 0x9e3779b9) >>> 0;
      var z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      z = (z ^ (z >>> 16)) >>> 0;
      return z / 4294967296;
    };
  }

  function shuffled(items, random) {
    var a = items.slice();
    for (var i = a.length - 1; i > 0; i--) {
      var j = Math.floor(random() * (i + 1));
      var t = a[i]; a[i] = a[j]; a[j] = t;
    }
    return a;
  }

  /* ---------------- state ---------------- */

  var S = {
    session: sessionFromUrl() || newSessionId(),
    form: {},
    order: [],        // the test pages in this participant's order
    index: -1,        // -1: training page; 0..n-1: test pages
    ratings: [],      // {page, stimuli: [...]} per finished page
    pageStart: 0,
    current: null,    // the page on screen: {id, kind, stimuli: [{system, file, button, score, moved, plays}], reference}
    finalComment: ""
  };

  /* ---------------- audio engine ---------------- */

  var A = {
    ctx: null, buffers: {}, source: null, gain: null, key: null, button: null,
    playing: false, startedAt: 0, offset: 0, loopStart: 0, loopEnd: 1, duration: 1, switches: 0
  };

  function position() {
    if (!A.playing) return A.offset;
    var p = A.offset + (A.ctx.currentTime - A.startedAt);
    if (p >= A.loopEnd) p = A.loopStart + ((p - A.loopStart) % (A.loopEnd - A.loopStart));
    return p;
  }

  function fadeOutCurrent(when) {
    if (!A.source) return;
    var src = A.source, g = A.gain;
    g.gain.cancelScheduledValues(when);
    g.gain.setValueAtTime(g.gain.value, when);
    g.gain.linearRampToValueAtTime(0, when + XFADE);
    try { src.stop(when + XFADE + 0.01); } catch (e) { /* already stopped */ }
    A.source = null; A.gain = null;
  }

  // Start the stimulus `key` of button `button` at the current playhead (where the previous one was).
  function play(key, button) {
    if (!A.ctx || !A.buffers[key]) return;
    if (A.ctx.state !== "running") A.ctx.resume();
    var from = position();
    var pos = (from < A.loopStart || from >= A.loopEnd) ? A.loopStart : from;
    var t = A.ctx.currentTime;
    var switching = A.playing && A.button !== null && A.button !== button;
    fadeOutCurrent(t);
    var src = A.ctx.createBufferSource();
    src.buffer = A.buffers[key];
    src.loop = true;
    src.loopStart = A.loopStart;
    src.loopEnd = A.loopEnd;
    var g = A.ctx.createGain();
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(1, t + XFADE);
    src.connect(g);
    g.connect(A.ctx.destination);
    src.start(t, pos);
    A.source = src; A.gain = g; A.key = key; A.button = button; A.playing = true; A.startedAt = t; A.offset = pos;
    if (switching) {
      A.switches += 1;
      var ph = $("playhead");
      ph.setAttribute("data-switch-from", from.toFixed(4));
      ph.setAttribute("data-switch-to", pos.toFixed(4));
    }
    markPlaying();
  }

  function stop() {
    if (A.playing) A.offset = position();
    if (A.ctx) fadeOutCurrent(A.ctx.currentTime);
    A.playing = false; A.key = null; A.button = null;
    markPlaying();
  }

  function resetTransport(duration) {
    stop();
    A.duration = duration; A.offset = 0; A.loopStart = 0; A.loopEnd = duration; A.switches = 0;
    var ls = $("loop-start"), le = $("loop-end");
    ls.max = le.max = duration.toFixed(1);
    ls.value = 0; le.value = duration.toFixed(1);
    $("playhead").removeAttribute("data-switch-from");
    $("playhead").removeAttribute("data-switch-to");
    showLoop();
    tick();  // the new page shows its playhead at 0 at once, not after the next 40 ms tick
  }

  function setLoop() {
    var a = parseFloat($("loop-start").value), b = parseFloat($("loop-end").value);
    var minimum = Math.min(0.5, A.duration);
    if (b > A.duration - 0.05) b = A.duration;
    if (b - a < minimum) {
      if (this === $("loop-start")) a = Math.max(0, b - minimum); else b = Math.min(A.duration, a + minimum);
      $("loop-start").value = a; $("loop-end").value = b;
    }
    var key = A.playing ? A.key : null, button = A.button, p = position();
    stop();
    A.loopStart = a; A.loopEnd = b;
    A.offset = (p < a || p >= b) ? a : p;
    if (key) play(key, button);
    showLoop();
  }

  function showLoop() {
    $("loop-text").textContent = A.loopStart.toFixed(1) + " s \u2013 " + A.loopEnd.toFixed(1) + " s";
    var band = $("loop-band");
    band.style.left = (100 * A.loopStart / A.duration) + "%";
    band.style.width = (100 * (A.loopEnd - A.loopStart) / A.duration) + "%";
  }

  function seek(event) {
    var r = $("timeline").getBoundingClientRect();
    var t = Math.max(0, Math.min(1, (event.clientX - r.left) / r.width)) * A.duration;
    t = Math.max(A.loopStart, Math.min(A.loopEnd - 0.01, t));
    var key = A.playing ? A.key : null, button = A.button;
    stop();
    A.offset = t;
    if (key) play(key, button);
  }

  function tick() {
    var ph = $("playhead"), p = position();
    ph.setAttribute("data-time", p.toFixed(4));
    ph.setAttribute("data-playing", A.playing ? A.button : "");
    ph.setAttribute("data-state", A.ctx ? A.ctx.state : "");
    ph.setAttribute("data-switches", String(A.switches));
    ph.textContent = p.toFixed(1) + " s";
    $("cursor").style.left = (100 * p / A.duration) + "%";
  }

  function markPlaying() {
    var playingButton = A.playing ? A.button : null;
    Array.prototype.forEach.call(document.querySelectorAll("[data-button]"), function (e) {
      e.classList.toggle("playing", e.getAttribute("data-button") === playingButton);
    });
  }

  /* ---------------- loading (file:// through <script>, http(s) through fetch) ---------------- */

  function base64Bytes(text) {
    var raw = window.atob(text), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function viaScript(key) {
    return new Promise(function (resolve, reject) {
      var s = el("script", { src: "stimuli/" + key + ".js" });
      s.onload = function () {
        var text = (window.LT_AUDIO || {})[key];
        delete window.LT_AUDIO[key];
        s.parentNode.removeChild(s);
        if (text) resolve(base64Bytes(text)); else reject(new Error("stimuli/" + key + ".js holds no audio"));
      };
      s.onerror = function () { reject(new Error("cannot load stimuli/" + key + ".js")); };
      document.head.appendChild(s);
    });
  }

  function bytesOf(key) {
    if (window.location.protocol === "file:" || !window.fetch) return viaScript(key);
    return window.fetch("stimuli/" + key + ".wav").then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.arrayBuffer();
    }).catch(function () { return viaScript(key); });
  }

  function decode(data) {
    return new Promise(function (resolve, reject) { A.ctx.decodeAudioData(data, resolve, reject); });
  }

  function loadAll() {
    var keys = [];
    C.pages.forEach(function (p) { p.stimuli.forEach(function (s) { keys.push(s.file); }); });
    var done = 0;
    function status() { $("loading-status").textContent = done + " of " + keys.length + " sounds decoded"; }
    status();
    var chain = Promise.resolve();
    keys.forEach(function (key) {  // one at a time: keeps the memory for base64 text low
      chain = chain.then(function () { return bytesOf(key); }).then(decode).then(function (buffer) {
        A.buffers[key] = buffer; done += 1; status();
      });
    });
    return chain;
  }

  /* ---------------- views ---------------- */

  function show(view) {
    $("app").setAttribute("data-view", view);
    Array.prototype.forEach.call(document.querySelectorAll(".view"), function (v) {
      v.hidden = v.id !== view;
    });
    window.scrollTo(0, 0);
  }

  function pageById(id) {
    for (var i = 0; i < C.pages.length; i++) if (C.pages[i].id === id) return C.pages[i];
    return null;
  }

  // The page as this participant sees it: rated stimuli shuffled and lettered.
  function prepare(page, kind) {
    var random = makeRandom(hash32(S.session + "|" + kind + "|" + page.id));
    var order = shuffled(page.stimuli, random);  // MUSHRA: the hidden reference among them
    return {
      id: page.id, kind: kind, reference: page.reference, duration: page.duration,
      stimuli: order.map(function (s, i) {
        return { system: s.system, file: s.file, button: LETTERS[i], plays: 0, moved: false,
                 score: C.design === "ape" ? Math.round(1000 * (0.05 + 0.9 * random())) / 10 : 0 };
      })
    };
  }

  function renderPage(page, kind, number) {
    S.current = prepare(page, kind);
    var box = $("stimuli");
    box.innerHTML = "";
    box.className = "stimuli " + C.design + (kind === "training" ? " training" : "");
    var sec = $("page");
    sec.setAttribute("data-kind", kind);
    sec.setAttribute("data-trial", page.id);
    sec.setAttribute("data-page-index", String(number));
    $("message").textContent = "";
    $("page-comment").value = "";
    if (kind === "training") {
      $("progress").textContent = "Training (nothing is recorded)";
      $("page-title").textContent = "Get to know the sounds";
      $("page-question").textContent = "Listen to every mix of this passage, switch between them, and set your " +
        "volume now (keep it for the whole test). Ratings on this page are not recorded.";
      $("next").textContent = "Start the test";
    } else {
      $("progress").textContent = "Page " + number + " of " + S.order.length;
      $("page-title").textContent = "Passage " + number;
      $("page-question").textContent = C.question;
      $("next").textContent = number === S.order.length ? "Finish the ratings" : "Next page";
    }
    $("page-comment").hidden = kind === "training";
    document.querySelector(".comment-label").hidden = kind === "training";
    if (C.design === "mushra") renderMushra(box); else renderApe(box);
    resetTransport(page.duration);
    S.pageStart = Date.now();
    show("page");
  }

  function playButton(label, key, stim) {
    var b = el("button", { type: "button", "class": "play", "data-button": label }, label === "reference" ? "Reference" : label);
    b.addEventListener("click", function () {
      if (A.playing && A.button === label) { stop(); return; }
      if (stim) stim.plays += 1;
      play(key, label);
    });
    return b;
  }

  function renderMushra(box) {
    var head = el("div", { "class": "mushra-ref" });
    head.appendChild(playButton("reference", S.current.reference, null));
    box.appendChild(head);
    var grid = el("div", { "class": "mushra-grid" });
    var scale = el("div", { "class": "mushra-scale" });
    LABELS.forEach(function (l) {
      var band = el("div", { "class": "band" });
      band.appendChild(el("span", { "class": "band-label" }, l[0]));
      band.appendChild(el("span", { "class": "band-range" }, l[1] + "\u2013" + l[2]));
      scale.appendChild(band);
    });
    grid.appendChild(scale);
    S.current.stimuli.forEach(function (s) {
      var col = el("div", { "class": "mushra-col" });
      var value = el("span", { "class": "value" }, "\u2013");
      var slider = el("input", { type: "range", min: "0", max: "100", step: "1", value: "0", "class": "rating",
                                 "data-button": s.button, "data-score": "0", "data-moved": "0",
                                 "aria-label": "rating of " + s.button });
      if (S.current.kind === "training") slider.setAttribute("title", "try the slider: nothing is recorded");
      slider.addEventListener("input", function () {
        s.score = parseInt(slider.value, 10); s.moved = true;
        slider.setAttribute("data-score", String(s.score));
        slider.setAttribute("data-moved", "1");
        value.textContent = String(s.score);
        col.classList.add("rated");
        remind();
      });
      var sliderBox = el("div", { "class": "slider-box" });
      sliderBox.appendChild(slider);
      col.appendChild(value);
      col.appendChild(sliderBox);
      col.appendChild(playButton(s.button, s.file, s));
      grid.appendChild(col);
    });
    box.appendChild(grid);
  }

  function renderApe(box) {
    var buttons = el("div", { "class": "ape-buttons" });
    S.current.stimuli.forEach(function (s) { buttons.appendChild(playButton(s.button, s.file, s)); });
    box.appendChild(buttons);
    var axis = el("div", { "class": "ape-axis" });
    axis.style.height = (28 + 30 * S.current.stimuli.length) + "px";
    [0, 25, 50, 75, 100].forEach(function (v) {
      var tick = el("div", { "class": "tick" });
      tick.style.left = v + "%";
      axis.appendChild(tick);
    });
    S.current.stimuli.forEach(function (s, lane) {
      var m = el("div", { "class": "rating marker", tabindex: "0", role: "slider", "aria-valuemin": "0",
                          "aria-valuemax": "100", "aria-label": "position of " + s.button,
                          "data-button": s.button, "data-moved": "0" }, s.button);
      m.style.top = (14 + 30 * lane) + "px";
      function place(v, moved) {
        v = Math.round(10 * Math.max(0, Math.min(100, v))) / 10;
        if (moved && v !== s.score) {
          s.moved = true; m.setAttribute("data-moved", "1"); m.classList.add("rated"); remind();
        }
        s.score = v;
        m.style.left = v + "%";
        m.setAttribute("data-score", v.toFixed(1));
        m.setAttribute("aria-valuenow", v.toFixed(1));
      }
      place(s.score, false);
      m.addEventListener("pointerdown", function (event) {
        event.preventDefault();
        m.focus();
        if (m.setPointerCapture) { try { m.setPointerCapture(event.pointerId); } catch (e) { /* synthetic */ } }
        if (!(A.playing && A.button === s.button)) { s.plays += 1; play(s.file, s.button); }
        var r = axis.getBoundingClientRect();
        var grab = event.clientX - (r.left + r.width * s.score / 100);
        function move(e) { place(100 * (e.clientX - grab - r.left) / r.width, true); }
        function up() {
          document.removeEventListener("pointermove", move);
          document.removeEventListener("pointerup", up);
        }
        document.addEventListener("pointermove", move);
        document.addEventListener("pointerup", up);
      });
      m.addEventListener("keydown", function (e) {
        var step = e.shiftKey ? 10 : 1;
        if (e.key === "ArrowLeft" || e.key === "ArrowDown") place(s.score - step, true);
        else if (e.key === "ArrowRight" || e.key === "ArrowUp") place(s.score + step, true);
        else if (e.key === " " || e.key === "Enter") { s.plays += 1; play(s.file, s.button); }
        else return;
        e.preventDefault();
      });
      axis.appendChild(m);
    });
    box.appendChild(axis);
    var ends = el("div", { "class": "ape-ends" });
    ends.appendChild(el("span", {}, "worst (0)"));
    ends.appendChild(el("span", {}, "best (100)"));
    box.appendChild(ends);
  }

  /* ---------------- flow ---------------- */

  function readForm() {
    var eq = document.querySelector("input[name=equipment]:checked");
    return { experience: $("experience").value, equipment: eq ? eq.value : "",
             age_band: $("age_band").value, hearing: $("hearing").value };
  }

  function start() {
    var form = readForm();
    if (!form.experience || !form.equipment) {
      $("welcome-message").textContent = "Please say what experience you have and whether you use headphones " +
        "or loudspeakers.";
      return;
    }
    S.form = form;
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { $("welcome-message").textContent = "This browser has no Web Audio; please use another one."; return; }
    A.ctx = new Ctx();
    A.ctx.resume();  // the click is the gesture browsers require before audio
    var random = makeRandom(hash32(S.session + "|pages"));
    S.order = shuffled(C.pages.map(function (p) { return p.id; }), random);
    show("loading");
    loadAll().then(function () {
      S.index = -1;
      renderPage(pageById(C.training), "training", 0);
    }).catch(function (err) {
      $("loading-status").textContent = "Could not load the sounds (" + err.message + "). Keep all files of the " +
        "test in one folder and open index.html again.";
    });
  }

  function unrated() {
    return S.current.stimuli.filter(function (s) { return !s.moved; }).map(function (s) { return s.button; });
  }

  function refusal(missing) {
    return (C.design === "mushra" ? "Please move every slider" : "Please move every marker") +
      " before you go on (not yet rated: " + missing.join(", ") + ").";
  }

  // After a refusal, keep the message up to date as the ratings come in.
  function remind() {
    var msg = $("message");
    if (!msg.textContent || S.current.kind !== "test") return;
    var missing = unrated();
    msg.textContent = missing.length ? refusal(missing) : "";
  }

  function next() {
    var cur = S.current;
    if (cur.kind === "test") {
      var missing = unrated();
      if (missing.length) {
        var msg = $("message");
        msg.setAttribute("data-refusals", String(parseInt(msg.getAttribute("data-refusals"), 10) + 1));
        msg.textContent = refusal(missing);
        return;
      }
      S.ratings.push({ trial_id: cur.id, page_order: S.index + 1, time_ms: Date.now() - S.pageStart,
                       timestamp: new Date().toISOString(), comment: $("page-comment").value,
                       stimuli: cur.stimuli.map(function (s) {
                         return { stimulus: s.system, button: s.button, score: s.score, plays: s.plays };
                       }) });
    }
    stop();
    S.index += 1;
    if (S.index < S.order.length) renderPage(pageById(S.order[S.index]), "test", S.index + 1);
    else { S.current = null; show("final"); }
  }

  function csvField(v) {
    var t = v === null || v === undefined ? "" : String(v);
    return /[",\r\n]|^\s|\s$/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }

  function results() {
    var rows = [C.csv_columns.join(",")];
    S.ratings.forEach(function (p) {
      p.stimuli.forEach(function (s) {
        var row = { session_id: S.session, test_id: C.test_id, design: C.design, trial_id: p.trial_id,
                    page_order: p.page_order, stimulus: s.stimulus, button: s.button,
                    score: C.design === "ape" ? s.score.toFixed(1) : String(s.score), time_ms: p.time_ms,
                    timestamp: p.timestamp, plays: s.plays, page_comment: p.comment,
                    experience: S.form.experience, equipment: S.form.equipment, age_band: S.form.age_band,
                    hearing: S.form.hearing, final_comment: S.finalComment };
        rows.push(C.csv_columns.map(function (c) { return csvField(row[c]); }).join(","));
      });
    });
    var json = { session_id: S.session, test_id: C.test_id, design: C.design, form: S.form,
                 final_comment: S.finalComment, user_agent: navigator.userAgent, pages: S.ratings };
    return { csv: rows.join("\r\n") + "\r\n", json: JSON.stringify(json, null, 1) + "\n" };
  }

  function finish() {
    S.finalComment = $("final-comment").value;
    var r = results();
    var base = "listening_" + C.design + "_" + S.session;
    [["download-csv", r.csv, "text/csv", ".csv"], ["download-json", r.json, "application/json", ".json"]].forEach(function (d) {
      var a = $(d[0]);
      a.href = URL.createObjectURL(new Blob([d[1]], { type: d[2] }));
      a.download = base + d[3];
    });
    $("session-id").textContent = S.session;
    $("results-text").value = r.csv;
    show("done");
  }

  function init() {
    if (!C) { document.body.textContent = "config.js is missing: keep every file of the test in one folder."; return; }
    document.title = C.title;
    $("question").textContent = C.question;
    Array.prototype.forEach.call(document.querySelectorAll(".instructions"), function (d) {
      d.hidden = d.getAttribute("data-design") !== C.design;
    });
    var seconds = 0;
    C.pages.forEach(function (p) { seconds += 40 + 3 * p.duration * p.stimuli.length; });
    $("minutes").textContent = String(Math.max(5, Math.round(seconds / 60)));
    $("start").addEventListener("click", start);
    $("next").addEventListener("click", next);
    $("stop").addEventListener("click", stop);
    $("finish").addEventListener("click", finish);
    $("timeline").addEventListener("click", seek);
    $("loop-start").addEventListener("input", setLoop);
    $("loop-end").addEventListener("input", setLoop);
    document.addEventListener("keydown", function (e) {  // space: stop / resume the last stimulus
      if (e.key === " " && e.target === document.body && S.current) { e.preventDefault(); if (A.playing) stop(); }
    });
    $("app").setAttribute("data-session", S.session);
    show("welcome");
    window.setInterval(tick, 40);
  }

  init();
})();

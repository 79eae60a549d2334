// The battle page: record or upload a query, stream both replies, speak again or vote, reveal.
// A battle is a conversation: each turn adds the person's turn and each side's reply as bubbles.
// In speech mode each reply is a recording: the person plays it on request, its text shows only
// once it was heard (or never, with hidden transcripts), and the vote unlocks only when each side
// was played for the minimum listening time or to its end (the server enforces the same rule).
// Every piece of text from the server is set as text (textContent), never parsed as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SIDES = ["a", "b"];
  let recorder = null;
  let reasonRecorder = null;
  let source = null;
  let battleId = null;
  let finished = {};
  let turn = 0;        // turns of the current battle so far
  let voted = false;
  let bubbles = {};    // the reply bubble of the current turn, per side
  const maxTurns = Number(($("max-turns") || {}).value || 1);
  const speech = (($("mode") || {}).value || "text") === "speech";
  const hideTranscripts = (($("hide-transcripts") || {}).value || "false") === "true";
  const minListen = Number(($("min-listen") || {}).value || 0);
  let players = {};    // speech mode: the current turn's player per side

  function setStatus(text) { $("status").textContent = text; }

  function showMessage(text) {
    const el = $("message");
    el.textContent = text;
    el.hidden = !text;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && typeof body.message === "string") { return body.message; }
    } catch (_e) { /* not JSON */ }
    return "the server answered " + response.status;
  }

  function setQueryEnabled(enabled) {
    $("record").disabled = !enabled;
    $("file").disabled = !enabled;
    $("upload").disabled = !enabled || !$("file").files.length;
  }

  function setVoteEnabled(enabled) {
    document.querySelectorAll("button.vote").forEach((b) => { b.disabled = !enabled; });
    $("reason").disabled = !enabled;
    if ($("reason-record")) { $("reason-record").disabled = !enabled; }
  }

  function resetPanels() {
    turn = 0;
    voted = false;
    bubbles = {};
    stopPlayers();
    for (const side of SIDES) {
      $("reply-" + side).textContent = "";
      $("name-" + side).textContent = "";
      $("latency-" + side).textContent = "";
      $("error-" + side).textContent = "";
      $("error-" + side).hidden = true;
      $("panel-" + side).classList.remove("done", "failed");
    }
  }

  // The person's turn and an empty reply bubble on each side, for the turn now starting.
  function addTurn(number) {
    for (const side of SIDES) {
      const said = document.createElement("div");
      said.className = "bubble user";
      said.textContent = "You (turn " + number + ")";
      const reply = document.createElement("div");
      reply.className = "bubble model";
      reply.dataset.turn = String(number);
      $("reply-" + side).append(said, reply);
      bubbles[side] = reply;
      if (speech) {
        const transcript = document.createElement("span");
        transcript.className = "transcript";
        transcript.hidden = true;
        reply.appendChild(transcript);
        bubbles[side] = transcript;
      }
      $("panel-" + side).classList.remove("done", "failed");
    }
  }

  function seconds(value) {
    return typeof value === "number" ? value.toFixed(2) + " s" : "–";
  }

  // -- speech mode: play each side on request, count what was heard ---------------------

  function stopPlayers() {
    for (const side of Object.keys(players)) { players[side].audio.pause(); }
    players = {};
  }

  function secondsHeard(audio) {
    let total = 0;
    for (let i = 0; i < audio.played.length; i++) {
      total += audio.played.end(i) - audio.played.start(i);
    }
    return total;
  }

  // Whether a side was heard enough: minListen seconds, or to its end.
  function heardEnough(side) {
    const player = players[side];
    if (!player) { return false; }
    return player.ended || secondsHeard(player.audio) >= minListen;
  }

  function listened() {
    return !speech || SIDES.every(heardEnough);
  }

  function updateHeard(side) {
    const player = players[side];
    if (!player) { return; }
    player.heard.textContent = "heard " + secondsHeard(player.audio).toFixed(1) + " s";
    if (heardEnough(side)) {
      player.bubble.classList.add("heard");
      if (!hideTranscripts) { bubbles[side].hidden = false; }
    }
    if (SIDES.every((s) => finished[s]) && !voted) { offerNext(); }
  }

  function addPlayer(side, url) {
    const bubble = bubbles[side].parentElement;
    const row = document.createElement("div");
    row.className = "player";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "play";
    button.id = "play-" + side;
    button.textContent = "Play " + side.toUpperCase();
    const heard = document.createElement("span");
    heard.className = "heard muted";
    heard.id = "heard-" + side;
    heard.textContent = "not played yet";
    const audio = new Audio(url);
    audio.preload = "auto";
    const player = { audio: audio, heard: heard, bubble: bubble, ended: false };
    players[side] = player;
    button.addEventListener("click", () => {
      if (!audio.paused) { audio.pause(); return; }
      for (const other of SIDES) {
        if (other !== side && players[other]) { players[other].audio.pause(); }
      }
      audio.play().catch(() => showMessage("The browser would not play the answer; try again."));
    });
    audio.addEventListener("play", () => { button.textContent = "Pause " + side.toUpperCase(); });
    audio.addEventListener("pause", () => { button.textContent = "Play " + side.toUpperCase(); });
    audio.addEventListener("timeupdate", () => updateHeard(side));
    audio.addEventListener("ended", () => { player.ended = true; updateHeard(side); });
    row.append(button, heard);
    bubble.insertBefore(row, bubble.firstChild);
  }

  // Both answers are in (and, in speech mode, heard): offer the vote and the next turn.
  function offerNext() {
    if (!listened()) {
      setStatus("Both answers are in: play each (" + minListen + " s, or all of it) to vote.");
      setVoteEnabled(false);
    } else {
      setStatus(turn < maxTurns
        ? "Both answers are in: vote below, or record again to go on talking."
        : "Both answers are in: vote below.");
      setVoteEnabled(true);
    }
    if (turn < maxTurns) {
      setQueryEnabled(true);
      $("record").textContent = "Speak again";
    }
  }

  function sideFinished(side) {
    finished[side] = true;
    if (SIDES.every((s) => finished[s])) {
      if (source) { source.close(); source = null; }
      const failed = SIDES.some((s) => $("panel-" + s).classList.contains("failed"));
      if (failed) {
        setStatus("A model failed to answer, so this round cannot be judged.");
        showNewRound();
      } else {
        offerNext();
      }
    }
  }

  function showNewRound() {
    $("reveal").hidden = false;
    $("reveal-text").textContent = "";
  }

  function parse(event) {
    try { return JSON.parse(event.data); } catch (_e) { return null; }
  }

  function openStream(id, number) {
    finished = {};
    source = new EventSource(
      "/api/battles/" + encodeURIComponent(id) + "/stream?turn=" + encodeURIComponent(number)
    );
    source.addEventListener("delta", (event) => {
      const data = parse(event);
      if (data && SIDES.includes(data.side) && bubbles[data.side]) {
        bubbles[data.side].textContent += data.text;
      }
    });
    source.addEventListener("audio", (event) => {
      const data = parse(event);
      if (speech && data && SIDES.includes(data.side) && bubbles[data.side] &&
          typeof data.url === "string" && data.url.startsWith("/api/battles/")) {
        addPlayer(data.side, data.url);
      }
    });
    source.addEventListener("done", (event) => {
      const data = parse(event);
      if (data && SIDES.includes(data.side)) {
        $("panel-" + data.side).classList.add("done");
        sideFinished(data.side);
      }
    });
    source.addEventListener("error", (event) => {
      // Both a server `error` event (with data) and a broken connection (without) land here.
      const data = event.data ? parse(event) : null;
      if (data && SIDES.includes(data.side)) {
        const el = $("error-" + data.side);
        el.textContent = data.message || "this model failed to answer";
        el.hidden = false;
        $("panel-" + data.side).classList.add("failed");
        sideFinished(data.side);
      } else if (source && !SIDES.every((s) => finished[s])) {
        source.close();
        source = null;
        showMessage("The connection to the arena was lost; start a new round.");
        showNewRound();
      }
    });
    source.addEventListener("end", () => {
      if (source) { source.close(); source = null; }
    });
  }

  async function send(blob, filename) {
    showMessage("");
    const goingOn = battleId !== null && !voted && turn > 0;
    if (!goingOn) { resetPanels(); }
    setQueryEnabled(false);
    setVoteEnabled(false);
    setStatus("Sending your question…");
    const form = new FormData();
    form.append("audio", blob, filename);
    let url = "/api/battles";
    if (goingOn) {
      url = "/api/battles/" + encodeURIComponent(battleId) + "/turns";
    } else {
      form.append("consent", $("consent").value);
      if ($("pid").value) { form.append("pid", $("pid").value); }
    }
    let response;
    try {
      response = await fetch(url, { method: "POST", body: form, credentials: "same-origin" });
    } catch (_e) {
      showMessage("Could not reach the arena; check your connection and try again.");
      setStatus("");
      setQueryEnabled(true);
      return;
    }
    if (!response.ok) {
      showMessage(await errorMessage(response));
      setStatus("");
      setQueryEnabled(true);
      return;
    }
    const body = await response.json();
    if (goingOn) {
      turn = body.turn;
    } else {
      battleId = body.battle_id;
      turn = 1;
    }
    stopPlayers();
    addTurn(turn);
    setStatus("The assistants are answering…");
    openStream(battleId, turn);
  }

  // Record from the microphone; `done(blob, extension)` gets the recording when it stops.
  async function openRecorder(done) {
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      showMessage("This browser cannot record audio; upload a file or type instead.");
      return null;
    }
    let micStream;
    try {
      micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (_e) {
      showMessage("The microphone is not available; allow it, or upload a file or type instead.");
      return null;
    }
    const type = "audio/webm;codecs=opus";
    const rec = MediaRecorder.isTypeSupported(type)
      ? new MediaRecorder(micStream, { mimeType: type })
      : new MediaRecorder(micStream);
    const parts = [];
    rec.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) { parts.push(event.data); }
    });
    rec.addEventListener("stop", () => {
      micStream.getTracks().forEach((t) => t.stop());
      const mime = rec.mimeType || "audio/webm";
      const ext = mime.includes("ogg") ? "ogg" : mime.includes("mp4") ? "m4a" : "webm";
      done(new Blob(parts, { type: mime }), ext);
    });
    rec.start();
    return rec;
  }

  async function startRecording() {
    showMessage("");
    recorder = await openRecorder((blob, ext) => {
      $("recording").hidden = true;
      send(blob, "query." + ext);
    });
    if (!recorder) { return; }
    $("record").disabled = true;
    $("stop").disabled = false;
    $("recording").hidden = false;
    setStatus("Recording: speak, then press Stop.");
  }

  function stopRecording() {
    $("stop").disabled = true;
    if (recorder && recorder.state !== "inactive") { recorder.stop(); }
  }

  async function transcribeReason(blob, ext) {
    const id = battleId;
    $("reason-status").textContent = "Transcribing…";
    const form = new FormData();
    form.append("audio", blob, "reason." + ext);
    const response = await fetch("/api/battles/" + encodeURIComponent(id) + "/feedback-audio", {
      method: "POST", body: form, credentials: "same-origin",
    }).catch(() => null);
    if (id !== battleId) { return; }
    if (!response || !response.ok) {
      $("reason-status").textContent = response
        ? await errorMessage(response)
        : "Could not reach the arena; type your reason instead.";
    } else {
      const body = await response.json();
      $("reason").value = body.text;
      $("reason-status").textContent = "Transcribed: correct it if needed, then vote.";
    }
    setVoteEnabled(true);
  }

  async function startReason() {
    showMessage("");
    reasonRecorder = await openRecorder(transcribeReason);
    if (!reasonRecorder) { return; }
    setVoteEnabled(false);
    $("reason-stop").disabled = false;
    $("reason-status").textContent = "Recording your reason: press Stop when done.";
  }

  function stopReason() {
    $("reason-stop").disabled = true;
    if (reasonRecorder && reasonRecorder.state !== "inactive") { reasonRecorder.stop(); }
  }

  async function vote(winner) {
    setVoteEnabled(false);
    const reason = $("reason").value.trim();
    const body = { winner: winner };
    if (reason) { body.feedback_text = reason; }
    const response = await fetch("/api/battles/" + encodeURIComponent(battleId) + "/vote", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    }).catch(() => null);
    if (!response) {
      showMessage("Could not reach the arena; try voting again.");
      setVoteEnabled(true);
      return;
    }
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_e) { /* not JSON */ }
      showMessage(body && typeof body.message === "string"
        ? body.message : "the server answered " + response.status);
      // a vote before both answers were heard may come again; a vote on a closed round not
      if (response.status !== 409 || (body && body.error === "listen_first")) {
        setVoteEnabled(true);
      }
      return;
    }
    const reveal = await response.json();
    voted = true;
    setQueryEnabled(false);
    $("record").textContent = "Record";
    for (const side of SIDES) {
      const latency = reveal["latency_" + side] || {};
      $("name-" + side).textContent = reveal["model_" + side];
      let timings = "first token " + seconds(latency.ttft_s) + " · total " +
        seconds(latency.total_s);
      if (typeof latency.audio_s === "number") {
        timings += " · first audio " + seconds(latency.ttfab_s) + " · audio " +
          seconds(latency.audio_s);
      }
      $("latency-" + side).textContent = timings;
      if (speech && bubbles[side]) { bubbles[side].hidden = false; }  // every text, once voted
    }
    const turns = reveal.turns || 1;
    $("reveal-text").textContent =
      "Model A was " + reveal.model_a + "; Model B was " + reveal.model_b + " (" + turns +
      (turns === 1 ? " turn" : " turns") + ").";
    $("reveal").hidden = false;
    $("votes-cast").textContent = String(reveal.votes_cast);
    if (reveal.completion_code) {
      $("completion-code").textContent = reveal.completion_code;
      $("completion").hidden = false;
    }
    setStatus("Thanks for voting!");
  }

  function newRound() {
    if (source) { source.close(); source = null; }
    battleId = null;
    finished = {};
    resetPanels();
    showMessage("");
    setStatus("");
    $("reason").value = "";
    if ($("reason-status")) { $("reason-status").textContent = ""; }
    $("reveal").hidden = true;
    $("reveal-text").textContent = "";
    setVoteEnabled(false);
    setQueryEnabled(true);
    $("record").textContent = "Record";
  }

  $("record").addEventListener("click", startRecording);
  $("stop").addEventListener("click", stopRecording);
  $("file").addEventListener("change", () => { $("upload").disabled = !$("file").files.length; });
  $("upload").addEventListener("click", () => {
    const file = $("file").files[0];
    if (file) { send(file, file.name); }
  });
  document.querySelectorAll("button.vote").forEach((button) => {
    button.addEventListener("click", () => vote(button.dataset.winner));
  });
  $("new-round").addEventListener("click", newRound);
  if ($("reason-record")) {
    $("reason-record").addEventListener("click", startReason);
    $("reason-stop").addEventListener("click", stopReason);
  }
})();

// The leaderboard page: tables and plotly figures from /api/leaderboard (text set as text).
// It polls the API, which answers at once with the last document the server refitted in the
// background (when the number of votes changed) and its age (`age_s`), shown under the summary;
// before the server's first fit it says `"status": "computing"` and the page asks again soon.
// Votes on text replies and on spoken replies are never pooled: the main table ranks one mode
// (`mode`), and `by_mode` / `by_turns` (when the votes have more than one mode or depth) add
// small tables.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 15000;
  const COMPUTING_POLL_MS = 2000;
  let shownBattles = -1;
  let age = null; // {seconds: age_s when fetched, at: performance.now() then, error: text or null}

  // "Computed 12 s ago." under the summary, ticking between polls (a small text of its own).
  function ageLine() {
    let line = $("age");
    if (!line) {
      line = document.createElement("p");
      line.id = "age";
      line.className = "muted";
      $("summary").after(line);
    }
    return line;
  }

  function since(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function showAge() {
    if (!age) { ageLine().textContent = ""; return; }
    const seconds = age.seconds + (performance.now() - age.at) / 1000;
    let text = "Computed " + since(seconds) + " ago; new votes show at the next refresh.";
    if (age.error) { text += " The latest refresh failed: " + age.error + "."; }
    ageLine().textContent = text;
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  const num = (v) => (typeof v === "number" && isFinite(v) ? Math.round(v).toString() : "–");
  const pct = (v) => (typeof v === "number" ? (100 * v).toFixed(0) + "%" : "–");

  function fillTables(models) {
    const ranked = $("ranked").querySelector("tbody");
    const provisional = $("provisional").querySelector("tbody");
    ranked.replaceChildren();
    provisional.replaceChildren();
    let rank = 0;
    for (const m of models) {
      const tr = document.createElement("tr");
      if (m.provisional) {
        cell(tr, m.model);
        cell(tr, String(m.battles));
        cell(tr, pct(m.win_rate));
        cell(tr, (m.provisional_reasons || []).join("; "));
        provisional.appendChild(tr);
      } else {
        rank += 1;
        cell(tr, String(rank));
        cell(tr, m.model);
        cell(tr, num(m.rating));
        cell(tr, num(m.ci_low) + " – " + num(m.ci_high));
        cell(tr, String(m.battles));
        cell(tr, pct(m.win_rate));
        ranked.appendChild(tr);
      }
    }
    for (const [body, text] of [[ranked, "No model has a rating yet."], [provisional, "None."]]) {
      if (!body.children.length) { mutedRow(body, text, 6); }
    }
  }

  const MODE_NAMES = { text: "text-out", speech: "speech-out" };
  const modeName = (mode) => MODE_NAMES[mode] || String(mode);

  function groupTitle(by, group) {
    const name = String(group.group);
    if (by === "mode") {
      const title = modeName(name);
      return title.charAt(0).toUpperCase() + title.slice(1) + " votes";
    }
    return "After " + name + (name === "1" ? " turn" : " turns");
  }

  function mutedRow(body, text, span) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = span;
    td.className = "muted";
    td.textContent = text;
    tr.appendChild(td);
    body.appendChild(tr);
  }

  // One small table per group (model, rating, CI, battles), side by side; the section is hidden
  // when the document has no grouping (one mode, or one depth).
  function fillGroups(sectionId, containerId, grouped) {
    const section = $(sectionId);
    const container = $(containerId);
    container.replaceChildren();
    if (!grouped || !Array.isArray(grouped.groups)) {
      section.hidden = true;
      return;
    }
    for (const group of grouped.groups) {
      const table = document.createElement("table");
      table.className = "board group";
      table.style.width = "auto";
      table.dataset.group = String(group.group);
      const caption = document.createElement("caption");
      caption.textContent = groupTitle(grouped.by, group) + " (" + group.n_battles +
        (group.n_battles === 1 ? " battle)" : " battles)");
      table.appendChild(caption);
      const head = document.createElement("thead");
      const headRow = document.createElement("tr");
      for (const title of ["Model", "Rating", "95% CI", "Battles"]) {
        const th = document.createElement("th");
        th.textContent = title;
        headRow.appendChild(th);
      }
      head.appendChild(headRow);
      table.appendChild(head);
      const body = document.createElement("tbody");
      const board = group.leaderboard;
      const rated = board ? (board.models || []).filter((m) => !m.provisional) : [];
      for (const m of rated) {
        const tr = document.createElement("tr");
        cell(tr, m.model);
        cell(tr, num(m.rating));
        cell(tr, num(m.ci_low) + " – " + num(m.ci_high));
        cell(tr, String(m.battles));
        body.appendChild(tr);
      }
      if (!rated.length) {
        mutedRow(body, board ? "No model has a rating yet." : (group.note || "No battles."), 4);
      }
      table.appendChild(body);
      container.appendChild(table);
    }
    section.hidden = false;
  }

  function emptyPlot(id, text) {
    const el = $(id);
    if (window.Plotly) { window.Plotly.purge(el); }
    el.replaceChildren();
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = text;
    el.appendChild(p);
  }

  // Ratings as points with horizontal 95% intervals, best at the top.
  function drawIntervals(models) {
    const rated = models.filter((m) => !m.provisional && typeof m.rating === "number").reverse();
    if (!rated.length) { emptyPlot("intervals-plot", "No model has a rating yet."); return; }
    const hasCi = (m) => typeof m.ci_low === "number" && typeof m.ci_high === "number";
    const trace = {
      type: "scatter",
      mode: "markers",
      x: rated.map((m) => m.rating),
      y: rated.map((m) => m.model),
      marker: { size: 10, color: "#2b6cb0" },
      error_x: {
        type: "data",
        symmetric: false,
        array: rated.map((m) => (hasCi(m) ? m.ci_high - m.rating : 0)),
        arrayminus: rated.map((m) => (hasCi(m) ? m.rating - m.ci_low : 0)),
        thickness: 2,
      },
      hovertemplate: "%{y}: %{x:.0f}<extra></extra>",
    };
    const layout = {
      margin: { l: 160, r: 20, t: 10, b: 40 },
      height: 80 + 40 * rated.length,
      xaxis: { title: { text: "rating (Elo scale)" }, zeroline: false },
      yaxis: { automargin: true },
    };
    $("intervals-plot").replaceChildren();
    window.Plotly.react("intervals-plot", [trace], layout, { displayModeBar: false, responsive: true });
  }

  // Row model's win rate against the column model, from each pair's own record; * where the
  // paired bootstrap of that pair's battles says the record differs from one half.
  function drawMatrix(models, records) {
    const names = models.map((m) => m.model);
    if (names.length < 2 || !records.length) {
      emptyPlot("matrix-plot", "No pair of models has met yet.");
      return;
    }
    const index = new Map(names.map((n, i) => [n, i]));
    const z = names.map(() => names.map(() => null));
    const text = names.map(() => names.map(() => ""));
    for (const p of records) {
      const i = index.get(p.model_a);
      const j = index.get(p.model_b);
      if (i === undefined || j === undefined || typeof p.win_rate !== "number") { continue; }
      const mark = p.significant ? "*" : "";
      z[i][j] = p.win_rate;
      z[j][i] = 1 - p.win_rate;
      text[i][j] = (100 * p.win_rate).toFixed(0) + "%" + mark + " (" + p.battles + ")";
      text[j][i] = (100 * (1 - p.win_rate)).toFixed(0) + "%" + mark + " (" + p.battles + ")";
    }
    const trace = {
      type: "heatmap",
      x: names,
      y: names,
      z: z,
      text: text,
      texttemplate: "%{text}",
      zmin: 0,
      zmax: 1,
      colorscale: "RdBu",
      hovertemplate: "%{y} vs %{x}: %{text}<extra></extra>",
      colorbar: { title: { text: "win rate" } },
    };
    const layout = {
      margin: { l: 160, r: 20, t: 10, b: 120 },
      height: 200 + 45 * names.length,
      xaxis: { title: { text: "opponent" }, automargin: true },
      yaxis: { autorange: "reversed", automargin: true },
    };
    $("matrix-plot").replaceChildren();
    window.Plotly.react("matrix-plot", [trace], layout, { displayModeBar: false, responsive: true });
  }

  async function load() {
    let response;
    try {
      response = await fetch("/api/leaderboard");
    } catch (_e) {
      $("message").textContent = "Could not reach the arena.";
      $("message").hidden = false;
      return;
    }
    let body = null;
    try { body = await response.json(); } catch (_e) { body = null; }
    if (!response.ok || !body) {
      $("message").textContent = (body && body.message) || "the server answered " + response.status;
      $("message").hidden = false;
      $("summary").textContent = "";
      return;
    }
    $("message").hidden = true;
    if (body.status === "computing") {
      if (shownBattles < 0) { $("summary").textContent = "The leaderboard is being computed\u2026"; }
      setTimeout(load, COMPUTING_POLL_MS);
      return;
    }
    const failed = body.refresh_error;
    age = typeof body.age_s === "number" ? {
      seconds: body.age_s,
      at: performance.now(),
      error: failed ? String(failed.message || failed.error) : null,
    } : null;
    showAge();
    const n = body.n_battles || 0;
    const counts = body.battles_by_mode || {};
    const mixed = Boolean(body.by_mode);
    // Every vote, of either mode: a vote of the mode not shown above still changes `by_mode`.
    const total = mixed ? (counts.text || 0) + (counts.speech || 0) : n;
    if (total === shownBattles) { return; }
    shownBattles = total;
    const models = body.models || [];
    fillTables(models);
    fillGroups("by-mode-section", "by-mode", body.by_mode);
    fillGroups("by-turns-section", "by-turns", body.by_turns);
    $("by-turns-note").textContent = "Votes after one turn, two turns, and three or more, each " +
      "depth ranked on its own votes" + (mixed ? " (" + modeName(body.mode) + " votes only)." : ".");
    if (window.Plotly) {
      drawIntervals(models);
      drawMatrix(models, body.head_to_head || []);
    } else {
      emptyPlot("intervals-plot", "The charts could not be loaded.");
      emptyPlot("matrix-plot", "The charts could not be loaded.");
    }
    let summary;
    if (mixed) {
      summary = total + " voted battles: " + (counts.text || 0) + " on text replies, " +
        (counts.speech || 0) + " on spoken replies. The two are ranked apart, never pooled: " +
        "the table and charts show the " + modeName(body.mode) + " votes, and each mode's own " +
        "ratings are under \u201cBy reply mode\u201d.";
    } else if (n) {
      summary = n + (n === 1 ? " voted battle" : " voted battles") +
        (body.mode === "speech" ? " on spoken replies." : ".");
    } else {
      summary = "No votes yet: play a round in the arena.";
    }
    $("summary").textContent = summary;
  }

  load();
  setInterval(load, POLL_MS);
  setInterval(showAge, 1000);
})();

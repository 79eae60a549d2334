// The leaderboard page: fill the tables from /api/leaderboard (textContent only).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  const num = (v) => (typeof v === "number" && isFinite(v) ? Math.round(v).toString() : "–");
  const pct = (v) => (typeof v === "number" ? (100 * v).toFixed(0) + "%" : "–");

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
    const models = body.models || [];
    const ranked = $("ranked").querySelector("tbody");
    const provisional = $("provisional").querySelector("tbody");
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
    for (const [body_, text] of [[ranked, "No model has a rating yet."], [provisional, "None."]]) {
      if (!body_.children.length) {
        const tr = document.createElement("tr");
        const td = document.createElement("td");
        td.colSpan = 6;
        td.className = "muted";
        td.textContent = text;
        tr.appendChild(td);
        body_.appendChild(tr);
      }
    }
    const n = body.n_battles || 0;
    $("summary").textContent = n
      ? n + (n === 1 ? " voted battle." : " voted battles.")
      : "No votes yet: play a round in the arena.";
  }

  load();
})();

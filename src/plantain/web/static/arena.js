// The arena: two engines answer one prompt side by side, their names hidden until the vote
// (POST v1/arena/pairs, polled at GET v1/arena/pairs/{id}); the leaderboard, prompt set
// imports and the votes' export. Every URL is relative to the page (common.js's url()).

import { ApiError, apiKey, dataURL, el, request, setApiKey, url } from "./common.js";

const POLL_MS = 500;
const SIDES = { left: "A", right: "B" };
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
// A prompt file's type by its extension: a browser often says nothing (.jsonl) or something odd (.csv).
const TYPES = {
  csv: "text/csv",
  json: "application/json",
  jsonl: "application/x-ndjson",
  ndjson: "application/x-ndjson",
  txt: "text/plain",
};
const KEYS = { 1: "left", 2: "right", 3: "tie", 4: "both_bad", a: "left", b: "right", t: "tie", x: "both_bad" };

const $ = (id) => document.getElementById(id);

const state = {
  pair: null, // the match on screen
  settings: null, // what started it: "Next match" asks the same
  generation: 0, // bumped by each new match: an older match's polling stops
  voting: false,
};

// --- errors, status and the API key ---------------------------------------------------------

function showError(error) {
  const box = $("arena-error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const message = error instanceof Error ? error.message : String(error);
  box.replaceChildren(
    el("strong", {}, "Error: "),
    message,
    error instanceof ApiError && error.field ? el("span", {}, " (field: ", el("span", { class: "field-name" }, error.field), ")") : null,
  );
  box.hidden = false;
  if (error instanceof ApiError && error.needsKey) {
    $("api-key-section").hidden = false;
    $("api-key").focus();
  }
}

/** Run ``work``; an error it throws shows in the alert. Returns its value, or undefined on error. */
async function guarded(work) {
  try {
    const value = await work();
    return value;
  } catch (error) {
    if (error && error.name === "AbortError") return undefined;
    showError(error);
    return undefined;
  }
}

function status(text) {
  $("arena-status").textContent = text;
}

// --- arena settings: categories -------------------------------------------------------------

async function loadArena() {
  const arena = await request("v1/arena");
  const select = $("arena-category");
  const chosen = select.value;
  const categories = arena.categories || [];
  // "": none sent, so the server's default applies: general, or an imported prompt's own category.
  const fallback = el("option", { value: "" }, "general (or the imported prompt's own)");
  select.replaceChildren(fallback, ...categories.map((name) => el("option", { value: name }, name)));
  select.value = categories.includes(chosen) ? chosen : "";
  return arena;
}

// --- a match --------------------------------------------------------------------------------

async function readSettings() {
  const settings = {};
  const prompt = $("arena-prompt").value.trim();
  if (prompt) settings.prompt = prompt;
  const category = $("arena-category").value;
  if (category) settings.category = category;
  const resolution = $("arena-resolution").value;
  if (resolution) settings.resolution = resolution;
  const files = [...$("arena-images").files];
  if (files.length) settings.images = await Promise.all(files.map(dataURL));
  return settings;
}

function setVoting(enabled) {
  for (const button of document.querySelectorAll(".arena-votes [data-choice]")) button.disabled = !enabled;
}

function resetSides() {
  for (const side of Object.keys(SIDES)) {
    $(`side-${side}`).setAttribute("aria-busy", "true");
    $(`status-${side}`).textContent = "queued";
    const progress = $(`progress-${side}`);
    progress.hidden = false;
    progress.removeAttribute("value");
    $(`images-${side}`).replaceChildren();
    $(`reveal-${side}`).textContent = "";
  }
}

async function startMatch(settings) {
  showError(null);
  const generation = ++state.generation;
  state.pair = null;
  state.settings = settings;
  setVoting(false);
  $("next-match").hidden = true;
  $("arena-start").disabled = true;
  status("Starting a match…");
  try {
    const pair = await request("v1/arena/pairs", { method: "POST", body: settings });
    if (generation !== state.generation) return;
    resetSides();
    $("match").hidden = false;
    render(pair);
    status("Generating both sides…");
    await poll(pair.id, generation);
  } catch (error) {
    if (generation !== state.generation) return;
    status("");
    if (!state.pair) $("match").hidden = true; // no stale match under the error
    showError(error);
  } finally {
    if (generation === state.generation) $("arena-start").disabled = false;
  }
}

async function poll(id, generation) {
  for (;;) {
    const pair = state.pair;
    if (!pair || generation !== state.generation) return;
    if (bothFinished(pair)) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (generation !== state.generation) return;
    render(await request(`v1/arena/pairs/${encodeURIComponent(id)}`));
  }
  const failed = Object.keys(SIDES).filter((side) => state.pair[side].status !== "succeeded");
  status(failed.length ? "Done, with a side that did not finish: vote or start another." : "Both sides are ready: vote.");
}

function bothFinished(pair) {
  return Object.keys(SIDES).every((side) => FINISHED.has(pair[side].status));
}

function render(pair) {
  state.pair = pair;
  $("match").dataset.pair = pair.id;
  $("match-prompt").textContent = pair.prompt || "";
  $("match-category").textContent = pair.category || "";
  for (const [side, letter] of Object.entries(SIDES)) renderSide(side, letter, pair[side]);
  const voted = Boolean(pair.vote);
  setVoting(!voted && bothFinished(pair) && !state.voting);
  $("next-match").hidden = !voted;
  for (const button of document.querySelectorAll(".arena-votes [data-choice]")) {
    if (voted) button.setAttribute("aria-pressed", String(pair.vote.choice === button.dataset.choice));
    else button.removeAttribute("aria-pressed");
  }
  if (voted) reveal(pair);
}

function renderSide(side, letter, data) {
  const done = FINISHED.has(data.status);
  $(`side-${side}`).setAttribute("aria-busy", String(!done));
  const progress = $(`progress-${side}`);
  const steps = data.progress && data.progress.steps;
  let text = data.status;
  if (!done && steps) {
    progress.max = steps;
    progress.value = Math.min(data.progress.step || 0, steps);
    text = `${data.status}: step ${data.progress.step || 0} of ${steps}`;
  }
  if (done) progress.hidden = true;
  if (data.status === "failed" && data.error) text = `failed: ${data.error.message || data.error.code || ""}`;
  $(`status-${side}`).textContent = text;
  const box = $(`images-${side}`);
  const images = data.images || [];
  if (box.childElementCount !== images.length) {
    box.replaceChildren(
      ...images.map((image, index) =>
        el(
          "a",
          { href: url(image.url), target: "_blank", rel: "noopener" },
          el("img", {
            src: url(image.url),
            alt: `Image ${index + 1} of side ${letter}`,
            width: image.width,
            height: image.height,
          }),
        ),
      ),
    );
  }
}

function reveal(pair) {
  for (const [side, letter] of Object.entries(SIDES)) {
    const name = pair[side].contestant;
    $(`reveal-${side}`).textContent = name ? `${letter} was ${name}` : "";
  }
}

async function vote(choice) {
  const pair = state.pair;
  if (!pair || pair.vote || state.voting || !bothFinished(pair)) return;
  state.voting = true;
  setVoting(false);
  showError(null);
  try {
    const voted = await request(`v1/arena/pairs/${encodeURIComponent(pair.id)}/vote`, {
      method: "POST",
      body: { choice },
    });
    state.voting = false;
    if (state.pair && state.pair.id === voted.id) render(voted);
    status("Vote saved.");
    await refreshLeaderboard();
    $("next-match").focus();
  } catch (error) {
    state.voting = false;
    showError(error);
    if (state.pair === pair) render(pair);
  }
}

// --- the leaderboard ------------------------------------------------------------------------

let boardRequests = 0;

async function refreshLeaderboard() {
  const select = $("leaderboard-category");
  const category = select.value;
  const query = category ? `?category=${encodeURIComponent(category)}` : "";
  const asked = ++boardRequests;
  const board = await request(`v1/arena/leaderboard${query}`);
  if (asked !== boardRequests) return; // a later refresh (another category) is on its way
  const voted = (board.categories || []).filter((entry) => entry.votes > 0);
  const options = [el("option", { value: "" }, "All")];
  for (const entry of voted) options.push(el("option", { value: entry.name }, `${entry.name} (${entry.votes})`));
  if (category && !voted.some((entry) => entry.name === category)) options.push(el("option", { value: category }, category));
  select.replaceChildren(...options);
  select.value = category;
  const votes = board.votes || 0;
  const table = $("leaderboard");
  table.dataset.category = category;
  table.dataset.votes = String(votes); // what the table shows now: tests wait on it
  $("leaderboard-caption").textContent =
    `${category ? `Ratings in ${category}` : "Ratings from all votes"}: ${votes} ${votes === 1 ? "vote" : "votes"}` +
    (board.method ? ` (${board.method.toUpperCase()})` : "");
  const rows = (board.data || []).map((row) =>
    el(
      "tr",
      { "data-contestant": row.contestant },
      el("td", {}, row.rank),
      el("th", { scope: "row" }, row.contestant),
      el("td", {}, fixed(row.rating)),
      el("td", {}, row.ci_low === null ? "too few votes" : `${fixed(row.ci_low)}–${fixed(row.ci_high)}`),
      el("td", {}, `${row.wins} / ${row.losses} / ${row.ties}`),
      el("td", {}, row.both_bad ?? 0),
      el("td", {}, row.votes),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7 }, "No votes yet.")));
  table.tBodies[0].replaceChildren(...rows);
}

function fixed(value) {
  return typeof value === "number" && Number.isFinite(value) ? Math.round(value).toString() : "–";
}

// --- prompt sets ----------------------------------------------------------------------------

async function importPrompts(file) {
  const dot = file.name.lastIndexOf(".");
  const name = dot > 0 ? file.name.slice(0, dot) : file.name;
  const extension = dot > 0 ? file.name.slice(dot + 1).toLowerCase() : "";
  const type = TYPES[extension] || file.type || "text/plain";
  $("import-status").textContent = `Importing ${file.name}…`;
  const answer = await request(`v1/arena/prompts?set=${encodeURIComponent(name)}`, {
    method: "POST",
    body: file,
    headers: { "Content-Type": type },
  });
  const count = (n) => `${n} ${n === 1 ? "prompt" : "prompts"}`;
  $("import-status").textContent = `Imported ${count(answer.imported)} (total ${answer.total}) from ${answer.set}.`;
}

// --- export ---------------------------------------------------------------------------------

/** A plain link cannot send the API key: fetch the file with it and save it through a Blob URL. */
async function exportVotes(link) {
  const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
  let answer;
  try {
    answer = await fetch(url(link.getAttribute("href")), { headers });
  } catch (failure) {
    throw new ApiError(0, `could not reach the server: ${failure.message}`);
  }
  if (!answer.ok) {
    let error = null;
    try {
      error = (await answer.json()).error;
    } catch {
      // not JSON: the status says enough
    }
    const message = (error && error.message) || `the server answered ${answer.status} ${answer.statusText}`;
    throw new ApiError(answer.status, message, error && error.code, error && error.field);
  }
  const blob = await answer.blob();
  const href = URL.createObjectURL(blob);
  const save = el("a", { href, download: link.getAttribute("download"), hidden: true });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

// --- wiring ---------------------------------------------------------------------------------

function wire() {
  $("arena-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const settings = await guarded(readSettings);
    if (settings) await startMatch(settings);
  });
  $("next-match").addEventListener("click", () => {
    if (state.settings) startMatch(state.settings);
  });
  for (const button of document.querySelectorAll(".arena-votes [data-choice]")) {
    button.addEventListener("click", () => vote(button.dataset.choice));
  }
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) return;
    const choice = KEYS[event.key.toLowerCase()];
    if (!choice) return;
    const button = document.querySelector(`.arena-votes [data-choice="${choice}"]`);
    if (button && !button.disabled) {
      event.preventDefault();
      button.click();
    }
  });
  $("leaderboard-category").addEventListener("change", () => guarded(refreshLeaderboard));
  $("prompt-file").addEventListener("change", async (event) => {
    const input = event.target;
    const file = input.files && input.files[0];
    if (!file) return;
    showError(null);
    const done = await guarded(async () => {
      await importPrompts(file);
      return true;
    });
    if (!done) $("import-status").textContent = "";
    input.value = "";
  });
  for (const link of [$("export-json"), $("export-csv")]) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showError(null);
      guarded(() => exportVotes(link));
    });
  }
  $("api-key").value = apiKey();
  $("api-key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    setApiKey($("api-key").value.trim());
    showError(null);
    await load();
  });
}

async function load() {
  const ready = await guarded(async () => {
    await loadArena();
    await refreshLeaderboard();
    return true;
  });
  if (ready && apiKey()) $("api-key-section").hidden = true;
  document.body.dataset.ready = "true"; // loaded (or failed to): tests wait on this
}

wire();
load();

// The playground: a conversation with the server's engines. Each turn is one task of the task API
// (POST v1/tasks), followed over its event stream (progress, previews) and shown with its results,
// seeds and cost. A result can be edited further ("Edit this"), run again with its seed, or have
// its provenance verified. History (GET v1/tasks) and usage (GET v1/usage) sit beside it.

import { ApiError, apiKey, dataURL, el, request, setApiKey, taskEvents } from "./common.js";

const $ = (selector) => document.querySelector(selector);
const ENDED = new Set(["succeeded", "failed", "cancelled"]);
const PREVIEWS = 2; // partial images asked of an engine that makes them
const EXTENSIONS = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/avif": "avif" };
const FALLBACK = {
  default: null,
  data: [],
  aspect_ratios: ["auto", "1:1"],
  resolutions: ["512", "1K", "2K", "4K"],
  output_formats: ["png", "jpeg", "webp", "avif"],
  max_num_images: 4,
  auth: false,
};

const state = {
  catalog: null, // GET v1/engines
  attachments: [], // [{src (data URI), name}]
  turns: new Map(), // task id -> turn
  cursor: null, // History's next page
  keyAsked: false,
};

// ---- the API key ------------------------------------------------------------------------------

function showKeyPanel(message) {
  const panel = $("#key-panel");
  panel.hidden = false;
  $("#key-button").setAttribute("aria-expanded", "true");
  if (message) $("#key-message").textContent = message;
  $("#api-key").value = apiKey();
  if (!state.keyAsked) {
    state.keyAsked = true;
    $("#api-key").focus();
  }
}

function hideKeyPanel() {
  $("#key-panel").hidden = true;
  $("#key-button").setAttribute("aria-expanded", "false");
}

/** An ApiError that asks for a key opens the key panel; answers whether it did. */
function keyNeeded(error) {
  if (!(error instanceof ApiError) || !error.needsKey) return false;
  const saying = apiKey()
    ? `The server refused this key (${error.message}). Enter another; it is kept in this browser only.`
    : `This server asks for an API key (${error.message}). It is kept in this browser only.`;
  showKeyPanel(saying);
  return true;
}

function wireKey() {
  $("#key-button").addEventListener("click", () => {
    if ($("#key-panel").hidden) {
      state.keyAsked = false;
      showKeyPanel(null);
    } else hideKeyPanel();
  });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("#api-key").value.trim());
    state.keyAsked = false;
    hideKeyPanel();
    loadAll();
  });
  $("#forget-key").addEventListener("click", () => {
    setApiKey("");
    $("#api-key").value = "";
    $("#api-key").focus();
  });
}

// ---- engines and settings ---------------------------------------------------------------------

function options(select, values, chosen, label = (value) => value) {
  const before = select.value;
  select.replaceChildren(...values.map((value) => el("option", { value }, label(value))));
  const keep = values.map(String).includes(before) ? before : chosen;
  if (keep !== null && keep !== undefined && values.map(String).includes(String(keep))) select.value = String(keep);
}

function engine() {
  const catalog = state.catalog || FALLBACK;
  return catalog.data.find((item) => item.name === $("#engine").value) || null;
}

function maxInputs() {
  const chosen = engine();
  return chosen ? chosen.max_input_images : 14;
}

function fillSettings(catalog) {
  state.catalog = catalog;
  const names = catalog.data.map((item) => item.name);
  options($("#engine"), names, catalog.default || names[0]);
  options($("#aspect-ratio"), catalog.aspect_ratios, "auto", (value) => (value === "auto" ? "auto (input's, or 1:1)" : value));
  options($("#resolution"), catalog.resolutions, catalog.resolutions.includes("1K") ? "1K" : catalog.resolutions[0]);
  const counts = Array.from({ length: Math.max(1, catalog.max_num_images) }, (_, index) => String(index + 1));
  options($("#count"), counts, "1");
  options($("#format"), catalog.output_formats, "png");
  engineChanged();
}

function engineChanged() {
  const chosen = engine();
  const about = $("#engine-about");
  if (!chosen) {
    about.textContent = "";
    $("#image-limit").textContent = "";
    return;
  }
  const bits = [chosen.description, `${chosen.steps} steps`];
  if (chosen.random_weights) bits.push("random weights: images are noise");
  about.textContent = bits.filter(Boolean).join(" · ");
  const most = chosen.max_input_images;
  $("#image-limit").textContent = most ? `up to ${most}` : "no input images";
  $("#pick-images").disabled = most === 0;
  checkAttachmentCount();
}

async function loadEngines() {
  try {
    fillSettings(await request("v1/engines"));
    $("#settings-message").hidden = true;
  } catch (error) {
    if (!state.catalog) fillSettings(FALLBACK);
    if (keyNeeded(error)) return;
    const message = $("#settings-message");
    message.textContent = `Could not read the engines: ${error.message}`;
    message.hidden = false;
  }
}

// ---- input images -----------------------------------------------------------------------------

function attachMessage(text) {
  const message = $("#attach-message");
  message.textContent = text || "";
  message.hidden = !text;
}

function checkAttachmentCount() {
  const most = maxInputs();
  if (state.attachments.length > most) {
    attachMessage(
      `${engine() ? engine().name : "This engine"} takes at most ${most} input image${most === 1 ? "" : "s"}; ` +
        `remove ${state.attachments.length - most} before running.`,
    );
    return false;
  }
  return true;
}

function renderAttachments() {
  const holder = $("#attachments");
  holder.replaceChildren(
    ...state.attachments.map((image, index) =>
      el(
        "div",
        { class: "thumb", role: "listitem" },
        el("img", { src: image.src, alt: `Input image ${index + 1}: ${image.name}` }),
        el(
          "button",
          {
            type: "button",
            class: "remove small",
            "aria-label": `Remove input image ${index + 1} (${image.name})`,
            onclick: () => {
              state.attachments.splice(index, 1);
              attachMessage("");
              renderAttachments();
              checkAttachmentCount();
              $("#prompt").focus();
            },
          },
          "×",
        ),
      ),
    ),
  );
  holder.hidden = state.attachments.length === 0;
}

async function attach(files) {
  const images = [...files].filter((file) => file.type.startsWith("image/"));
  if (files.length && !images.length) {
    attachMessage("Only images can be attached (PNG, JPEG, WebP, GIF, AVIF, HEIC).");
    return;
  }
  const most = maxInputs();
  let refused = 0;
  for (const file of images) {
    if (state.attachments.length >= most) {
      refused += 1;
      continue;
    }
    state.attachments.push({ src: await dataURL(file), name: file.name || "pasted image" });
  }
  if (refused) {
    const name = engine() ? engine().name : "This engine";
    attachMessage(
      most === 0
        ? `${name} takes no input images; pick an engine that edits to use them.`
        : `${name} takes at most ${most} input image${most === 1 ? "" : "s"}; ` +
            `${refused} ${refused === 1 ? "was" : "were"} not added.`,
    );
  } else attachMessage("");
  renderAttachments();
}

function wireImages() {
  const picker = $("#images");
  $("#pick-images").addEventListener("click", () => picker.click());
  picker.addEventListener("change", async () => {
    await attach(picker.files);
    picker.value = "";
  });
  const zone = $("#composer");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      if (![...(event.dataTransfer?.types || [])].includes("Files")) return;
      event.preventDefault();
      zone.classList.add("dropping");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dropping");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dropping");
    attach(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])].filter((file) => file.type.startsWith("image/"));
    if (!files.length) return;
    event.preventDefault();
    attach(files);
  });
}

// ---- a turn: one task -------------------------------------------------------------------------

function settingsFromForm() {
  const input = {
    prompt: $("#prompt").value,
    aspect_ratio: $("#aspect-ratio").value || "auto",
    resolution: $("#resolution").value || "1K",
    num_images: Number($("#count").value || 1),
    output_format: $("#format").value || "png",
  };
  const seed = $("#seed").value.trim();
  if (seed !== "") input.seed = Number(seed);
  return { model: $("#engine").value || undefined, input, images: state.attachments.map((image) => image.src) };
}

function describe(settings) {
  const input = settings.input;
  const count = input.num_images || 1;
  return [
    settings.model,
    input.aspect_ratio,
    input.resolution,
    `${count} image${count === 1 ? "" : "s"}`,
    input.output_format,
    input.seed !== undefined && input.seed !== null ? `seed ${input.seed}` : "random seed",
  ]
    .filter(Boolean)
    .join(" · ");
}

function statusBadge(turn, status, text) {
  turn.status = status;
  turn.node.dataset.status = status;
  turn.badge.dataset.state = status;
  turn.badge.textContent = text || status;
  const active = status === "queued" || status === "running" || status === "sending";
  turn.cancel.hidden = !active;
  turn.cancel.disabled = !turn.id || status === "sending";
  if (!active) turn.progress.hidden = true;
}

function newTurn(settings, inputCount) {
  const images = settings.images || [];
  const badge = el("span", { class: "badge", "data-state": "sending" }, "sending");
  const progress = el("progress", { class: "progress", max: "1", value: "0", "aria-label": "Progress" });
  const cancel = el("button", { type: "button", class: "cancel small danger" }, "Cancel");
  const node = el(
    "article",
    { class: "turn", "aria-label": `Turn: ${settings.input.prompt.slice(0, 80)}` },
    el(
      "div",
      { class: "turn-request" },
      el("p", { class: "turn-prompt" }, settings.input.prompt || el("em", { class: "muted" }, "(no prompt)")),
      images.length
        ? el(
            "div",
            { class: "turn-inputs" },
            images.map((src, index) => el("img", { src, alt: `Input image ${index + 1}`, class: "input-thumb" })),
          )
        : inputCount
          ? el("p", { class: "muted small" }, `${inputCount} input image${inputCount === 1 ? "" : "s"}`)
          : null,
      el("p", { class: "turn-settings muted small" }, describe(settings)),
    ),
    el("div", { class: "turn-status row" }, badge, el("span", { class: "task-id muted small" }), cancel),
    progress,
  );
  const previews = el("div", { class: "previews", "aria-label": "Previews" });
  const results = el("div", { class: "results" });
  const meta = el("p", { class: "turn-meta muted small" });
  node.append(previews, results, meta);
  const turn = { id: null, settings, node, badge, progress, cancel, previews, results, meta, status: "sending" };
  cancel.addEventListener("click", () => cancelTurn(turn));
  $("#empty")?.remove();
  $("#conversation").append(node);
  statusBadge(turn, "sending", "sending");
  return turn;
}

function showError(turn, error) {
  turn.node.querySelector(".turn-error")?.remove();
  const field = error.field ? el("span", { class: "field-name" }, error.field) : null;
  const text = [error.message || String(error)];
  const alert = el(
    "div",
    { class: "error turn-error", role: "alert" },
    el("p", {}, text),
    field ? el("p", { class: "small" }, "Field: ", field) : null,
  );
  turn.meta.before(alert);
}

async function submit(settings) {
  const most = maxInputs();
  if ((settings.images || []).length > most) {
    checkAttachmentCount();
    return null;
  }
  const chosen = state.catalog?.data.find((item) => item.name === settings.model);
  const input = { ...settings.input };
  if (settings.images?.length) input.images = settings.images;
  if (chosen?.previews) input.previews = PREVIEWS;
  const body = { input };
  if (settings.model) body.model = settings.model;
  const turn = newTurn(settings, 0);
  turn.node.scrollIntoView({ block: "nearest" });
  let task;
  try {
    task = await request("v1/tasks", { method: "POST", body });
  } catch (error) {
    statusBadge(turn, "refused", error.status ? `refused (${error.status})` : "not sent");
    showError(turn, error);
    if (keyNeeded(error)) {
      showError(turn, {
        message: `${error.message} Enter the API key above, then run again.`,
        field: error.field,
      });
    }
    return turn;
  }
  track(turn, task);
  return turn;
}

function track(turn, task) {
  turn.id = task.id;
  turn.node.dataset.taskId = task.id;
  turn.node.querySelector(".task-id").textContent = task.id;
  turn.progress.setAttribute("aria-label", `Progress of ${task.id}`);
  state.turns.set(task.id, turn);
  update(turn, task);
  if (!ENDED.has(task.status)) follow(turn);
}

function update(turn, task) {
  turn.task = task;
  if (task.status === "queued") {
    const where = task.queue_position ? ` (position ${task.queue_position})` : "";
    statusBadge(turn, "queued", `queued${where}`);
  } else if (task.status === "running") {
    statusBadge(turn, "running", "running");
    turn.progress.hidden = false;
  } else if (ENDED.has(task.status)) finish(turn, task);
}

async function follow(turn) {
  turn.progress.hidden = false;
  turn.progress.removeAttribute("value"); // indeterminate until the first step
  let after = 0;
  for (let attempt = 0; attempt < 5 && !ENDED.has(turn.status); attempt += 1) {
    try {
      for await (const message of taskEvents(turn.id, { after })) {
        turn.node.dataset.stream = "open"; // following its events (previews are live only)
        if (message.id) after = message.id;
        onEvent(turn, message);
        if (ENDED.has(message.event)) break;
      }
    } catch (error) {
      if (keyNeeded(error)) break;
      await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
    }
    await refresh(turn);
  }
}

async function refresh(turn) {
  try {
    update(turn, await request(`v1/tasks/${encodeURIComponent(turn.id)}`));
  } catch (error) {
    keyNeeded(error);
  }
}

function onEvent(turn, { event, data }) {
  // Each event's data is flat (the task API's event_body): position, step and total, or a preview.
  if (event === "queued") {
    const where = data.position ? ` (position ${data.position})` : "";
    statusBadge(turn, "queued", `queued${where}`);
  } else if (event === "started") {
    statusBadge(turn, "running", "running");
    turn.progress.hidden = false;
  } else if (event === "progress") {
    if (turn.status !== "running") statusBadge(turn, "running", "running");
    turn.progress.max = data.total;
    turn.progress.value = Math.min(data.step, data.total);
    turn.progress.setAttribute("aria-valuetext", `step ${data.step} of ${data.total}`);
    turn.badge.textContent = `running · step ${data.step}/${data.total}`;
  } else if (event === "preview") {
    showPreview(turn, data);
  }
  // completed, failed, cancelled: the task itself is read once the stream ends (refresh)
}

function showPreview(turn, { index = 0, image }) {
  if (!image) return;
  const slot = Number(index) || 0;
  let img = turn.previews.querySelector(`img[data-index="${slot}"]`);
  if (!img) {
    img = el("img", { class: "preview", "data-index": slot, alt: `Preview of image ${slot + 1}` });
    turn.previews.append(img);
  }
  img.src = image;
  turn.node.dataset.previews = String(Number(turn.node.dataset.previews || 0) + 1);
}

function money(cost) {
  if (!cost || cost.amount === undefined || cost.amount === null) return null;
  const amount = Number(cost.amount);
  const shown = amount === 0 ? "0" : amount < 0.01 ? amount.toPrecision(2) : amount.toFixed(4);
  return `${shown} ${cost.currency || ""}`.trim();
}

function finish(turn, task) {
  if (turn.finished) return;
  turn.finished = true;
  turn.previews.replaceChildren();
  const labels = { succeeded: "done", failed: "failed", cancelled: "cancelled" };
  statusBadge(turn, task.status, labels[task.status]);
  const images = (task.output && task.output.images) || [];
  turn.results.replaceChildren(...images.map((image, index) => resultFigure(turn, task, image, index)));
  if (task.status === "failed" && task.error) showError(turn, task.error);
  if (task.status === "cancelled") {
    turn.meta.before(el("p", { class: "cancelled-note muted" }, "This run was cancelled."));
  }
  const seeds = images.map((image) => image.seed).filter((seed) => seed !== null && seed !== undefined);
  const usage = task.usage || {};
  const bits = [];
  if (seeds.length) bits.push(el("span", { class: "meta-seed" }, `${seeds.length === 1 ? "seed" : "seeds"} ${seeds.join(", ")}`));
  if (typeof usage.device_seconds === "number") {
    bits.push(el("span", { class: "meta-seconds" }, `${usage.device_seconds.toFixed(2)} device s`));
  }
  const cost = money(usage.cost);
  if (cost) bits.push(el("span", { class: "meta-cost" }, `cost ${cost}`));
  turn.meta.replaceChildren(...bits);
  turn.meta.dataset.seeds = seeds.join(",");
  loadHistory();
  loadUsage();
}

function extension(image, task) {
  return EXTENSIONS[image.media_type] || task.input?.output_format || "png";
}

function resultFigure(turn, task, image, index) {
  const n = index + 1;
  const name = `plantain-${task.id}-${n}.${extension(image, task)}`;
  const verify = el(
    "button",
    { type: "button", class: "verify badge", "aria-label": `Verify the provenance of image ${n}` },
    "Verify",
  );
  verify.addEventListener("click", () => verifyImage(verify, image));
  return el(
    "figure",
    { class: "result", "data-seed": image.seed },
    el(
      "a",
      { href: image.url, target: "_blank", rel: "noopener", class: "result-link" },
      el("img", {
        src: image.url,
        width: image.width,
        height: image.height,
        alt: `Result ${n} of “${(task.input?.prompt || "").slice(0, 100)}”, seed ${image.seed}`,
      }),
    ),
    el(
      "figcaption",
      {},
      el("span", { class: "muted small" }, `${image.width}×${image.height} · seed ${image.seed}`),
      el(
        "div",
        { class: "actions row" },
        el("a", { class: "button small download", href: image.url, download: name }, "Download"),
        el(
          "button",
          { type: "button", class: "edit-this small", onclick: () => editThis(image, n) },
          "Edit this",
        ),
        el(
          "button",
          { type: "button", class: "same-seed small", onclick: () => sameSeed(turn, task, image) },
          "Same seed again",
        ),
        verify,
      ),
    ),
  );
}

async function imageBlob(image) {
  const answer = await fetch(image.url);
  if (!answer.ok) throw new Error(`the image could not be read (${answer.status})`);
  return answer.blob();
}

async function editThis(image, n) {
  try {
    const blob = await imageBlob(image);
    const src = await dataURL(blob);
    state.attachments = [{ src, name: `result ${n} (seed ${image.seed})` }];
    attachMessage("");
    renderAttachments();
    checkAttachmentCount();
  } catch (error) {
    attachMessage(`Could not use that image: ${error.message}`);
  }
  const prompt = $("#prompt");
  prompt.focus();
  prompt.scrollIntoView({ block: "nearest" });
}

function sameSeed(turn, task, image) {
  const settings = turn.settings || settingsOfTask(task);
  const again = { ...settings, input: { ...settings.input, seed: image.seed } };
  submit(again);
}

async function verifyImage(button, image) {
  button.disabled = true;
  button.textContent = "Verifying…";
  try {
    const blob = await imageBlob(image);
    const report = await request("v1/provenance/verify", {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || image.media_type || "image/png" },
    });
    const mark = report.watermark || {};
    const credentials = report.content_credentials || {};
    const good = credentials.state === "valid" || credentials.state === "trusted";
    const parts = [
      mark.present ? "watermark found" : "no watermark",
      credentials.state && credentials.state !== "absent" && credentials.state !== "none"
        ? `content credentials ${credentials.state}`
        : "no content credentials",
    ];
    button.textContent = parts.join(" · ");
    button.title = report.verdict || "";
    button.dataset.watermark = String(Boolean(mark.present));
    button.dataset.credentials = credentials.state || "";
    button.classList.toggle("ok", Boolean(mark.present) && good);
    button.classList.toggle("bad", !mark.present && !good);
    button.setAttribute("aria-label", `Provenance: ${parts.join(", ")}. ${report.verdict || ""}`);
  } catch (error) {
    if (!keyNeeded(error)) button.title = error.message;
    button.textContent = "Verify failed";
    button.classList.add("bad");
  } finally {
    button.disabled = false;
  }
}

async function cancelTurn(turn) {
  if (!turn.id) return;
  turn.cancel.disabled = true;
  try {
    update(turn, await request(`v1/tasks/${encodeURIComponent(turn.id)}/cancel`, { method: "POST" }));
  } catch (error) {
    if (!keyNeeded(error)) showError(turn, error);
    turn.cancel.disabled = false;
  }
}

function settingsOfTask(task) {
  const input = task.input || {};
  const settings = {
    model: task.model,
    input: {
      prompt: input.prompt || "",
      aspect_ratio: input.aspect_ratio || "auto",
      resolution: input.resolution || "1K",
      num_images: input.num_images || 1,
      output_format: input.output_format || "png",
    },
    images: [],
  };
  if (input.seed !== null && input.seed !== undefined) settings.input.seed = input.seed;
  return settings;
}

/** A task from History, shown in the conversation (followed if it has not ended). */
function showTask(task) {
  const known = state.turns.get(task.id);
  if (known) {
    known.node.scrollIntoView({ block: "nearest" });
    known.node.querySelector("button, a")?.focus();
    return;
  }
  const turn = newTurn(settingsOfTask(task), task.input?.images || 0);
  track(turn, task);
  turn.node.scrollIntoView({ block: "nearest" });
}

// ---- history and usage ------------------------------------------------------------------------

function historyItem(task) {
  const first = task.output?.images?.[0];
  const prompt = task.input?.prompt || "(no prompt)";
  return el(
    "li",
    { "data-task-id": task.id },
    el(
      "button",
      {
        type: "button",
        class: "history-item",
        "aria-label": `${prompt.slice(0, 120)} (${task.status})`,
        onclick: async () => {
          try {
            showTask(await request(`v1/tasks/${encodeURIComponent(task.id)}`));
          } catch (error) {
            if (!keyNeeded(error)) showTask(task);
          }
        },
      },
      first
        ? el("img", { src: first.url, alt: "", width: 48, height: 48, loading: "lazy" })
        : el("span", { class: "no-thumb", "aria-hidden": "true" }),
      el("span", { class: "history-prompt" }, prompt),
      el("span", { class: "badge", "data-state": task.status }, task.status),
    ),
  );
}

let historyLoading = null; // the first page's load in flight
let historyAgain = false; // asked again meanwhile: load once more when it ends

async function loadHistory(more = false) {
  if (!more && historyLoading) {
    historyAgain = true;
    return historyLoading;
  }
  const run = (async () => {
    const query = new URLSearchParams({ limit: "20" });
    if (more && state.cursor) query.set("cursor", state.cursor);
    try {
      const page = await request(`v1/tasks?${query}`);
      const items = (page.data || []).map(historyItem);
      if (more) $("#history").append(...items);
      else $("#history").replaceChildren(...items);
      if (!more && !items.length) $("#history").append(el("li", { class: "muted small" }, "No tasks yet."));
      state.cursor = page.next_cursor || null;
      $("#load-more").hidden = !state.cursor;
    } catch (error) {
      if (!keyNeeded(error)) {
        $("#history").replaceChildren(el("li", { class: "error small" }, `Could not read the history: ${error.message}`));
      }
    }
  })();
  if (more) return run;
  historyLoading = run.finally(() => {
    historyLoading = null;
    if (historyAgain) {
      historyAgain = false;
      return loadHistory();
    }
    return undefined;
  });
  return historyLoading;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

async function loadUsage() {
  try {
    const usage = await request("v1/usage");
    const rows = usage.data || [];
    const sum = (name) => rows.reduce((total, row) => total + (Number(row[name]) || 0), 0);
    const costs = rows.map((row) => money(row.cost)).filter(Boolean);
    const seconds = sum("device_seconds");
    $("#usage").textContent =
      `Usage${usage.key_id ? ` (key ${usage.key_id})` : ""}: ${plural(sum("requests"), "task")}, ` +
      `${plural(sum("images"), "image")}, ` +
      `${seconds.toFixed(1)} device s, cost ${costs.join(" + ") || "0"}`;
  } catch (error) {
    if (!keyNeeded(error)) $("#usage").textContent = `Usage unavailable: ${error.message}`;
  }
}

function loadAll() {
  return Promise.all([loadEngines(), loadHistory(), loadUsage()]);
}

// ---- the composer -----------------------------------------------------------------------------

function wireComposer() {
  const form = $("#composer");
  const prompt = $("#prompt");
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!checkAttachmentCount()) return;
    const settings = settingsFromForm();
    const turn = await submit(settings);
    if (turn && turn.status !== "refused") {
      prompt.value = "";
      state.attachments = [];
      renderAttachments();
      attachMessage("");
    }
  });
  $("#engine").addEventListener("change", engineChanged);
  $("#load-more").addEventListener("click", () => loadHistory(true));
  $("#refresh-history").addEventListener("click", () => loadHistory());
}

wireKey();
wireImages();
wireComposer();
renderAttachments();
loadAll().then(() => {
  document.body.dataset.ready = "true";
});

// What both pages share: the API key (kept in this browser only), JSON calls that turn the
// server's error envelope into an ApiError, a task's SSE stream read with fetch (EventSource
// cannot send an Authorization header), and a small DOM builder. Every URL is relative to the
// page, so the pages work under a path prefix.

const KEY_STORAGE = "plantain.apiKey";

/** An error the server answered: its status, code, field and message, as the task API words them. */
export class ApiError extends Error {
  constructor(status, message, code = null, field = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }
  /** Whether the server wants an API key that was not sent, or not this one. */
  get needsKey() {
    return this.status === 401 || this.status === 403;
  }
}

export function apiKey() {
  return window.localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) window.localStorage.setItem(KEY_STORAGE, key);
  else window.localStorage.removeItem(KEY_STORAGE);
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

/** ``path`` relative to the server's root, whatever page we are on (/playground, /arena). */
export function url(path) {
  return new URL(path.replace(/^\//, ""), new URL(".", window.location.href)).toString();
}

async function errorOf(answer) {
  let body = null;
  try {
    body = await answer.json();
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  const error = body && body.error;
  const message = (error && error.message) || `the server answered ${answer.status} ${answer.statusText}`;
  return new ApiError(answer.status, message, error && error.code, error && error.field);
}

/**
 * Call the API and return its JSON answer. ``body``: an object (sent as JSON), a FormData, a Blob
 * or a string; ``headers`` add to the key's. A network failure is an ApiError with status 0.
 */
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, headers: withKey(headers), signal };
  if (body !== undefined) {
    const raw = body instanceof FormData || body instanceof Blob || typeof body === "string";
    init.body = raw ? body : JSON.stringify(body);
    if (!raw) init.headers["Content-Type"] = "application/json";
  }
  let answer;
  try {
    answer = await fetch(url(path), init);
  } catch (failure) {
    if (failure.name === "AbortError") throw failure;
    throw new ApiError(0, `could not reach the server: ${failure.message}`);
  }
  if (!answer.ok) throw await errorOf(answer);
  if (answer.status === 204) return null;
  const type = answer.headers.get("content-type") || "";
  return type.includes("json") ? answer.json() : answer.text();
}

/**
 * A task's events (GET /v1/tasks/{id}/events) as they come: yields {id, event, data}, data
 * parsed from JSON. Ends after the task's last event; ``signal`` stops it early.
 */
export async function* taskEvents(taskId, { signal, after = 0 } = {}) {
  const headers = withKey(after ? { "Last-Event-ID": String(after) } : {});
  const answer = await fetch(url(`v1/tasks/${encodeURIComponent(taskId)}/events`), { headers, signal });
  if (answer.status === 204) return; // nothing after ``after``: the task had ended
  if (!answer.ok) throw await errorOf(answer);
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = { id: null, event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") message.id = Number(text);
        else if (field === "event") message.event = text;
        else if (field === "data") message.data += (message.data ? "\n" : "") + text;
      }
      if (!message.data) continue;
      yield { ...message, data: JSON.parse(message.data) };
    }
  }
}

/** A file (drop, paste, picker) as a data: URI, which the task API takes as an input image. */
export function dataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

/**
 * ``el("button", {class: "x", onclick: f, "aria-label": "…"}, "text", child)``: an element with
 * attributes (``on*`` functions become listeners, ``false``/``null`` ones are left out) and children.
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

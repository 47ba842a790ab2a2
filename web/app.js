// The t2v web page: submit a prompt, follow the job, play and download the video.
// Plain ES module, no dependencies. Every value from the API is written with textContent.

const POLL_INTERVAL_MS = 500;
const LIST_PAGE_SIZE = 10;
const KEY_STORAGE = "t2v.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const NUMBER_FIELDS = [
  "width", "height", "num_frames", "duration_s", "fps",
  "num_inference_steps", "guidance_scale", "seed",
];
const TEXT_FIELDS = ["prompt", "negative_prompt"];

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, error, retryAfter) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.field = error.field || null;
    this.retryAfter = retryAfter;
  }
}

// ---- API access ---------------------------------------------------------------------------

function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage blocked (private mode, policy): run without a key
  }
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = { method, signal, headers: { Accept: "application/json", ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || { message: text.trim() || response.statusText };
    throw new ApiError(response.status, error, response.headers.get("Retry-After"));
  }
  return data;
}

const jobPath = (id) => `/v1/jobs/${encodeURIComponent(id)}`;

function describeError(error) {
  if (!(error instanceof ApiError)) {
    return `Could not reach the API (${error.message}). Check the connection and try again.`;
  }
  if (error.status === 401) {
    return `${error.message}. Set your API key in "API key" below.`;
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    return `${error.message}.${wait}`;
  }
  return error.message;
}

// ---- Formatting -----------------------------------------------------------------------------

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function progressText(job) {
  const p = job.progress;
  if (job.status === "succeeded") return "100%";
  if (!p) return job.status === "queued" ? "waiting" : "";
  const phase = typeof p.phase_percent === "number" && job.phase !== "denoising"
    ? `, ${job.phase} ${Math.round(p.phase_percent)}%` : "";
  const steps = `step ${p.step} of ${p.total}${phase} (${Math.round(p.percent)}% of the job)`;
  return p.attempt > 1 ? `${steps}, attempt ${p.attempt}` : steps;
}

function statusSentence(job) {
  switch (job.status) {
    case "queued":
      return job.queue_position ? `Queued, position ${job.queue_position}.` : "Queued.";
    case "running":
      return `Running${job.phase ? `: ${job.phase}` : ""}${job.cancel_requested ? ", cancel requested" : ""}.`;
    case "succeeded":
      return "Succeeded: the video is ready.";
    case "failed":
      return `Failed: ${job.error ? job.error.message : "unknown error"}.`;
    default:
      return "Canceled.";
  }
}

// ---- The form -------------------------------------------------------------------------------

const form = $("job-form");
const submitButton = $("submit-button");
let pendingSubmission = null; // {payload, key}: a retry of the same request reuses its key

function readForm() {
  const payload = {};
  const problems = [];
  for (const name of TEXT_FIELDS) {
    const value = form.elements[name].value;
    if (name === "prompt" || value.trim() !== "") payload[name] = value;
  }
  for (const name of NUMBER_FIELDS) {
    const input = form.elements[name];
    if (input.validity.badInput) {
      problems.push([name, "Enter a number."]);
    } else if (input.value.trim() !== "") {
      payload[name] = Number(input.value);
    }
  }
  return { payload, problems };
}

function clearErrors() {
  $("form-error").textContent = "";
  for (const name of [...TEXT_FIELDS, ...NUMBER_FIELDS]) clearFieldError(name);
}

function clearFieldError(name) {
  $(`${name}-error`).textContent = "";
  form.elements[name].removeAttribute("aria-invalid");
}

function showFieldError(name, message) {
  const input = form.elements[name];
  if (!input || !$(`${name}-error`)) return false;
  $(`${name}-error`).textContent = message;
  input.setAttribute("aria-invalid", "true");
  if (input.closest("details")) input.closest("details").open = true;
  input.focus();
  return true;
}

async function submitJob(event) {
  event.preventDefault();
  if (submitButton.disabled) return;
  clearErrors();
  const { payload, problems } = readForm();
  if (problems.length) {
    for (const [name, message] of problems.reverse()) showFieldError(name, message);
    return;
  }
  const body = JSON.stringify(payload);
  if (!pendingSubmission || pendingSubmission.body !== body) {
    pendingSubmission = { body, key: crypto.randomUUID() };
  }
  submitButton.disabled = true;
  submitButton.textContent = "Submitting...";
  try {
    const job = await api("/v1/jobs", {
      method: "POST",
      body: payload,
      headers: { "Idempotency-Key": pendingSubmission.key },
    });
    pendingSubmission = null;
    showJob(job);
    loadList();
  } catch (error) {
    if (error instanceof ApiError && error.status < 500 && error.status !== 429) {
      pendingSubmission = null; // the server refused this body: a fixed one gets a new key
    }
    if (!(error instanceof ApiError && error.field && showFieldError(error.field, error.message))) {
      $("form-error").textContent = describeError(error);
      if (error instanceof ApiError && error.status === 401) $("key-details").open = true;
    }
  } finally {
    submitButton.disabled = false;
    submitButton.textContent = "Generate video";
  }
}

// ---- The current job ------------------------------------------------------------------------

let current = null; // {id, generation, lastStatus, lastPhase, videoFor, objectUrl}
let generation = 0;

function showJob(job) {
  generation += 1;
  releaseVideo();
  current = { id: job.id, generation, lastStatus: null, lastPhase: null, videoFor: null };
  $("job-panel").hidden = false;
  $("job-error").textContent = "";
  history.replaceState(null, "", `#job=${encodeURIComponent(job.id)}`);
  renderJob(job);
  if (!TERMINAL.has(job.status)) follow(current);
}

async function follow(state) {
  let delay = POLL_INTERVAL_MS;
  while (state.generation === generation) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (state.generation !== generation) return;
    try {
      const job = await api(jobPath(state.id));
      if (state.generation !== generation) return;
      $("job-error").textContent = "";
      renderJob(job);
      delay = POLL_INTERVAL_MS;
      if (TERMINAL.has(job.status)) {
        loadList();
        return;
      }
    } catch (error) {
      $("job-error").textContent = describeError(error);
      if (error instanceof ApiError && error.status === 404) return;
      // Back off while the API is unreachable or limiting us; keep following.
      const retryAfter = error instanceof ApiError ? Number(error.retryAfter) : NaN;
      delay = retryAfter > 0 ? retryAfter * 1000 : Math.min(delay * 2, 8000);
    }
  }
}

function renderJob(job) {
  $("job-id").textContent = job.id;
  $("job-prompt").textContent = job.params ? job.params.prompt : "";
  const badge = $("job-status");
  badge.textContent = job.status;
  badge.dataset.status = job.status;
  $("job-phase").textContent = job.phase || "-";
  $("job-queue").textContent = job.queue_position ? String(job.queue_position) : "-";
  // The API's estimate: learned on the machine, counting every phase and the queue ahead.
  const secondsLeft = typeof job.eta_seconds === "number" ? Math.round(job.eta_seconds) : null;
  $("job-eta").textContent = secondsLeft === null ? "-" : `about ${secondsLeft} s`;

  const bar = $("job-progress");
  const percent = job.status === "succeeded" ? 100 : job.progress ? job.progress.percent : 0;
  if (job.status === "queued") bar.removeAttribute("value"); // indeterminate while waiting
  else bar.value = percent;
  $("job-progress-text").textContent = progressText(job);

  if (job.status !== current.lastStatus || job.phase !== current.lastPhase) {
    $("job-announcer").textContent = statusSentence(job);
    current.lastStatus = job.status;
    current.lastPhase = job.phase;
  }
  if (job.status === "failed" && job.error) {
    const retry = job.error.retryable ? " Submitting again may work." : "";
    $("job-error").textContent = `${job.error.message} (${job.error.code}).${retry}`;
  }

  const cancel = $("cancel-button");
  cancel.hidden = TERMINAL.has(job.status);
  cancel.disabled = Boolean(job.cancel_requested);
  cancel.textContent = job.cancel_requested ? "Canceling..." : "Cancel job";

  if (job.status === "succeeded" && job.video && current.videoFor !== job.id) {
    current.videoFor = job.id;
    showVideo(job, current);
  }
  syncListRows(job);
}

function syncListRows(job) {
  // Keeps the shown job's row in "Recent jobs" current without reloading the list.
  for (const row of document.querySelectorAll(".job-row")) {
    const isShown = row.dataset.id === job.id;
    if (isShown) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
    if (isShown) {
      const badge = row.querySelector(".badge");
      badge.textContent = job.status;
      badge.dataset.status = job.status;
    }
  }
}

async function cancelJob() {
  if (!current) return;
  const state = current;
  $("cancel-button").disabled = true;
  try {
    const job = await api(`${jobPath(state.id)}/cancel`, { method: "POST" });
    if (state.generation === generation) renderJob(job);
  } catch (error) {
    $("job-error").textContent = describeError(error);
    $("cancel-button").disabled = false;
  }
}

// ---- The video ------------------------------------------------------------------------------

async function showVideo(job, state) {
  const video = $("job-video");
  const link = $("download-link");
  const v = job.video;
  let source = `${jobPath(job.id)}/video`;
  if (apiKey()) {
    // A <video> element cannot send the Authorization header: fetch the file with it.
    try {
      const response = await fetch(source, { headers: authHeaders() });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blob = await response.blob();
      if (state.generation !== generation) return;
      state.objectUrl = URL.createObjectURL(blob);
      source = state.objectUrl;
    } catch (error) {
      $("job-error").textContent = `Could not load the video: ${error.message}.`;
      return;
    }
  }
  video.src = source;
  video.setAttribute("aria-label", `Video for: ${job.params ? job.params.prompt : job.id}`);
  link.href = source;
  link.download = `t2v-${job.id}.mp4`;
  $("video-facts").textContent =
    `${v.width}x${v.height}, ${v.num_frames} frames at ${v.fps} fps (${v.duration_s.toFixed(2)} s), ` +
    `${formatBytes(v.bytes)}`;
  $("video-area").hidden = false;
}

function releaseVideo() {
  if (current && current.objectUrl) URL.revokeObjectURL(current.objectUrl);
  const video = $("job-video");
  video.removeAttribute("src");
  video.load();
  $("video-area").hidden = true;
}

// ---- Recent jobs ----------------------------------------------------------------------------

let nextCursor = null;
let listGeneration = 0;

async function loadList({ append = false } = {}) {
  const mine = ++listGeneration;
  const params = new URLSearchParams({ limit: String(LIST_PAGE_SIZE) });
  const status = $("status-filter").value;
  if (status) params.set("status", status);
  if (append && nextCursor) params.set("cursor", nextCursor);
  try {
    const page = await api(`/v1/jobs?${params}`);
    if (mine !== listGeneration) return;
    const list = $("job-list");
    if (!append) list.replaceChildren();
    for (const job of page.data) list.append(jobRow(job));
    nextCursor = page.next_cursor;
    $("more-button").hidden = !nextCursor;
    $("list-message").textContent = list.children.length ? "" : "No jobs yet.";
  } catch (error) {
    if (mine === listGeneration) $("list-message").textContent = describeError(error);
  }
}

function jobRow(job) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "job-row";
  button.dataset.id = job.id;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.dataset.status = job.status;
  badge.textContent = job.status;
  const prompt = document.createElement("span");
  prompt.className = "job-row-prompt";
  prompt.textContent = job.params ? job.params.prompt : job.id;
  const when = document.createElement("time");
  when.dateTime = job.created_at || "";
  when.textContent = formatTime(job.created_at);
  button.append(badge, prompt, when);
  if (current && current.id === job.id) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => openJob(job.id));
  item.append(button);
  return item;
}

async function openJob(id) {
  try {
    showJob(await api(jobPath(id)));
    $("job-heading").scrollIntoView({ block: "start" });
    $("job-heading").focus({ preventScroll: true });
  } catch (error) {
    $("list-message").textContent = describeError(error);
  }
}

// ---- API key --------------------------------------------------------------------------------

function saveKey(event) {
  event.preventDefault();
  const value = $("api-key").value.trim();
  try {
    if (value) localStorage.setItem(KEY_STORAGE, value);
    else localStorage.removeItem(KEY_STORAGE);
    $("key-state").textContent = value ? "Key saved." : "No key: requests go without one.";
  } catch {
    $("key-state").textContent = "This browser does not allow storing the key.";
  }
  loadList();
}

function forgetKey() {
  $("api-key").value = "";
  try {
    localStorage.removeItem(KEY_STORAGE);
  } catch {
    // nothing stored, nothing to forget
  }
  $("key-state").textContent = "Key forgotten.";
}

// ---- Start ----------------------------------------------------------------------------------

function start() {
  $("job-heading").tabIndex = -1;
  $("api-key").value = apiKey();
  form.addEventListener("submit", submitJob);
  for (const name of [...TEXT_FIELDS, ...NUMBER_FIELDS]) {
    form.elements[name].addEventListener("input", () => clearFieldError(name));
  }
  $("cancel-button").addEventListener("click", cancelJob);
  $("refresh-button").addEventListener("click", () => loadList());
  $("status-filter").addEventListener("change", () => loadList());
  $("more-button").addEventListener("click", () => loadList({ append: true }));
  $("key-form").addEventListener("submit", saveKey);
  $("forget-key").addEventListener("click", forgetKey);
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("job");
  if (fromHash) openJob(fromHash);
  loadList();
}

start();

// Drives the t2v web page in Debian's Chromium (playwright-core, no downloaded browser)
// against a running platform. Usage: node tests/web/page_flow.mjs <gateway URL>
// Exits non-zero with a message on the first check that fails. Screenshots go to
// $T2V_SCREENSHOT_DIR when it is set.

import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.argv[2];
const CHROMIUM = process.env.T2V_CHROMIUM || "/usr/bin/chromium";
const SCREENSHOTS = process.env.T2V_SCREENSHOT_DIR || "";
const SMALL = { width: "64", height: "48", num_frames: "7", num_inference_steps: "2" };
const LONG = { width: "240", height: "432", num_frames: "31", num_inference_steps: "40" };

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function step(name) {
  console.log(`- ${name}`);
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function fillSettings(page, prompt, settings) {
  await page.fill("#prompt", prompt);
  if (!(await page.locator("#settings").evaluate((d) => d.open))) {
    await page.click("#settings > summary");
  }
  for (const name of ["width", "height", "num_frames", "num_inference_steps"]) {
    await page.fill(`#${name}`, settings[name] ?? "");
  }
}

async function apiJob(page, id) {
  return page.evaluate(async (jobId) => (await fetch(`/v1/jobs/${jobId}`)).json(), id);
}

async function jobsWithPrompt(page, prompt) {
  const list = await page.evaluate(async () => (await fetch("/v1/jobs?limit=100")).json());
  return list.data.filter((job) => job.params.prompt === prompt);
}

async function badRequestShowsServerMessage(page) {
  step("a bad width shows the server's message next to the width field");
  await fillSettings(page, "a lighthouse in a storm", { ...SMALL, width: "100" });
  await page.click("#submit-button");
  const error = page.locator("#width-error");
  await error.waitFor({ state: "visible", timeout: 10_000 });
  // The API's message and its stable code, as the API sent them.
  check(
    /^width must be a multiple of 16 \(got 100\) \(\w+\)$/.test(await error.textContent()),
    `width error reads ${JSON.stringify(await error.textContent())}`,
  );
  check((await page.getAttribute("#width", "aria-invalid")) === "true", "width not aria-invalid");
  check(await page.locator("#width").evaluate((el) => el === document.activeElement), "focus");
  check((await page.textContent("#form-error")) === "", "the form-level error stays empty");
  check(await page.locator("#job-panel").isHidden(), "a refused request shows no job");
}

async function smallJobSucceedsAndPlays(page) {
  step("a small job, submitted from the keyboard, succeeds with its progress shown");
  const prompt = `a red fox in fresh snow ${randomUUID()}`;
  await fillSettings(page, prompt, SMALL);
  const widthHint = await page.textContent("#width-hint");
  check(/multiple of 16/.test(widthHint), `the width's limits from the schema: ${widthHint}`);
  await screenshot(page, "form");
  check(
    (await page.getAttribute("#width", "aria-invalid")) === null,
    "editing the field clears its error",
  );
  await page.evaluate(() => {
    window.seenStatuses = [];
    // The job panel appears with the first answer: watch the whole page for its status.
    new MutationObserver(() => {
      const shown = document.getElementById("job-status")?.textContent;
      if (shown && shown !== window.seenStatuses.at(-1)) window.seenStatuses.push(shown);
    }).observe(document.body, { childList: true, characterData: true, subtree: true });
  });
  await page.focus("#submit-button");
  await page.keyboard.press("Enter");
  await page.locator('#job-status[data-status="succeeded"]').waitFor({ timeout: 90_000 });
  const seen = await page.evaluate(() => window.seenStatuses);
  check(seen[0] === "queued" || seen[0] === "running", `first status shown: ${seen[0]}`);
  check((await page.textContent("#job-progress-text")) === "100%", "progress reads 100%");
  check((await page.locator("#job-progress").evaluate((bar) => bar.value)) === 100, "bar full");
  check(/Succeeded/.test(await page.textContent("#job-announcer")), "announced success");
  check(await page.locator("#cancel-button").isHidden(), "no cancel on a finished job");
  const id = await page.textContent("#job-id");
  check(page.url().endsWith(`#job=${id}`), "the job is in the address");
  const job = await apiJob(page, id);
  check(job.status === "succeeded" && job.params.prompt === prompt, "the API agrees");

  step("the video loads and plays to the end");
  const video = page.locator("#job-video");
  await video.evaluate(
    (v) => v.readyState >= 1 || new Promise((resolve, reject) => {
      v.addEventListener("loadedmetadata", resolve, { once: true });
      v.addEventListener("error", () => reject(new Error(`video error ${v.error?.code}`)), { once: true });
    }),
  );
  const size = await video.evaluate((v) => [v.videoWidth, v.videoHeight]);
  check(size[0] === 64 && size[1] === 48, `video is ${size}`);
  const ended = await video.evaluate(async (v) => {
    v.muted = true;
    const done = new Promise((resolve) => v.addEventListener("ended", resolve, { once: true }));
    await v.play();
    await done;
    return { ended: v.ended, error: v.error, time: v.currentTime, duration: v.duration };
  });
  check(ended.ended && ended.error === null, `playback ${JSON.stringify(ended)}`);
  check(Math.abs(ended.duration - 7 / 30) < 0.05, `duration ${ended.duration}`);
  await screenshot(page, "finished");

  step("the download link saves the MP4 the API describes");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-link")]);
  check(download.suggestedFilename() === `t2v-${id}.mp4`, download.suggestedFilename());
  const bytes = await readFile(await download.path());
  check(bytes.length === job.video.bytes, `downloaded ${bytes.length} bytes`);
  check(createHash("sha256").update(bytes).digest("hex") === job.video.sha256, "sha256 matches");
  return prompt;
}

async function longJobCancels(page) {
  step("a double click submits one job; its steps show live; cancel stops it");
  const prompt = `a slow sunrise over the sea ${randomUUID()}`;
  await fillSettings(page, prompt, LONG);
  await page.dblclick("#submit-button");
  const progressText = page.locator("#job-progress-text");
  await page.waitForFunction(
    () => /^step [1-9]\d* of 40/.test(document.getElementById("job-progress-text").textContent),
    null,
    { timeout: 90_000, polling: 100 },
  );
  check((await page.locator("#job-progress").evaluate((bar) => bar.value)) > 0, "bar moved");
  check((await page.textContent("#job-status")) === "running", "running while stepping");
  check((await page.textContent("#job-phase")) === "denoising", "phase shown");
  check(/Running: denoising/.test(await page.textContent("#job-announcer")), "phase announced");
  const first = await progressText.textContent();
  await page.waitForFunction(
    (before) => document.getElementById("job-progress-text").textContent !== before,
    first,
    { timeout: 60_000, polling: 100 },
  );
  await page.locator("#job-eta").filter({ hasText: /^about \d+ (s|min)$/ }).waitFor({ timeout: 60_000 });
  await screenshot(page, "running");
  check((await jobsWithPrompt(page, prompt)).length === 1, "a double click made two jobs");

  await page.click("#cancel-button");
  await page.locator('#job-status[data-status="canceled"]').waitFor({ timeout: 60_000 });
  check(/Canceled/.test(await page.textContent("#job-announcer")), "announced cancel");
  check(await page.locator("#cancel-button").isHidden(), "cancel gone once canceled");
  check(await page.locator("#video-area").isHidden(), "no video for a canceled job");
  const job = await apiJob(page, await page.textContent("#job-id"));
  check(job.status === "canceled", `API says ${job.status}`);
  check(job.progress.step < 40, `stopped at step ${job.progress.step}`);
  return prompt;
}

async function recentJobsListBoth(page, succeededPrompt, canceledPrompt) {
  step("recent jobs lists both; opening one shows it");
  await page.click("#refresh-button");
  const row = (prompt) => page.locator(".job-row", { hasText: prompt });
  await row(canceledPrompt).waitFor({ timeout: 10_000 });
  check(
    (await row(canceledPrompt).locator(".badge").textContent()) === "canceled",
    "canceled row",
  );
  await page.selectOption("#status-filter", "succeeded");
  await page.locator(".job-row .badge:not([data-status=succeeded])").first().waitFor({
    state: "detached",
    timeout: 10_000,
  });
  await row(succeededPrompt).click();
  await page.locator('#job-status[data-status="succeeded"]').waitFor({ timeout: 10_000 });
  check((await page.textContent("#job-prompt")) === succeededPrompt, "opened the right job");
  await page.locator("#video-area").waitFor({ state: "visible", timeout: 10_000 });
  await historyPages(page);
}

async function historyPages(page) {
  step("the history pages with its cursor: Load more adds the next page, no row twice");
  // More jobs than a page holds, canceled at once (a queued job cancels without running).
  const ids = await page.evaluate(async (settings) => {
    const fill = async (i) => {
      const body = { prompt: `history page filler ${i}`, ...settings };
      const response = await fetch("/v1/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
        body: JSON.stringify(body),
      });
      const job = await response.json();
      await fetch(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
      return job.id;
    };
    return Promise.all(Array.from({ length: 10 }, (_, i) => fill(i)));
  }, Object.fromEntries(Object.entries(LONG).map(([k, v]) => [k, Number(v)])));
  check(ids.length === 10, "filler jobs made");
  await page.selectOption("#status-filter", "");
  await page.click("#refresh-button");
  await page.locator("#more-button").waitFor({ timeout: 10_000 });
  check((await page.locator(".job-row").count()) === 10, "one page of ten rows");
  await page.click("#more-button");
  await page.waitForFunction(() => document.querySelectorAll(".job-row").length > 10, null, {
    timeout: 10_000,
  });
  const rows = await page.locator(".job-row").evaluateAll((els) => els.map((el) => el.dataset.id));
  check(new Set(rows).size === rows.length, `a row shown twice: ${rows}`);
}

async function apiKeyIsSentAndVideoStillPlays(page, succeededPrompt) {
  step("a saved API key is sent as a Bearer token; the video then comes as a blob");
  // The platform runs open, so any key is accepted; what matters is that it is sent.
  const key = `test-key-${randomUUID()}`;
  const authorizations = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname.startsWith("/v1/jobs")) {
      authorizations.push(request.headers().authorization);
    }
  });
  await page.click("#key-details > summary");
  await page.fill("#api-key", key);
  await page.click("#key-form button[type=submit]");
  await page.locator("#key-state").filter({ hasText: "Key saved." }).waitFor({ timeout: 5_000 });
  check(await page.evaluate(() => sessionStorage.getItem("t2v.apiKey")) === key, "key stored");
  check(await page.evaluate(() => localStorage.length) === 0, "nothing kept beyond the tab");
  await page.reload();
  check((await page.inputValue("#api-key")) === key, "key shown again after a reload");
  await page.locator('#job-status[data-status="succeeded"]').waitFor({ timeout: 10_000 });
  check((await page.textContent("#job-prompt")) === succeededPrompt, "reload reopens the job");
  await page.locator("#video-area").waitFor({ state: "visible", timeout: 10_000 });
  const video = await page.locator("#job-video").evaluate(async (v) => {
    if (v.readyState < 1) await new Promise((resolve) => v.addEventListener("loadedmetadata", resolve, { once: true }));
    return { src: v.src, width: v.videoWidth, error: v.error };
  });
  check(video.src.startsWith("blob:") && video.width === 64 && video.error === null,
    `keyed video ${JSON.stringify(video)}`);
  check((await page.getAttribute("#download-link", "href")).startsWith("blob:"), "blob download");
  check(authorizations.length > 0, "no API requests seen");
  check(authorizations.every((value) => value === `Bearer ${key}`), `sent ${authorizations}`);
  await page.click("#key-details > summary"); // closed again after the reload
  await page.click("#forget-key");
  check(await page.evaluate(() => sessionStorage.getItem("t2v.apiKey")) === null, "key forgotten");
}

async function phoneWidth(browser) {
  step("the page fits a phone's width, and every control has a label");
  const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/`);
  await page.click("#settings > summary");
  await page.locator(".job-row").first().waitFor({ timeout: 10_000 });
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  check(overflow <= 0, `horizontal overflow of ${overflow}px`);
  const unlabeled = await page.evaluate(() =>
    [...document.querySelectorAll("input, textarea, select")]
      .filter((el) => el.labels.length === 0)
      .map((el) => el.id),
  );
  check(unlabeled.length === 0, `controls without a label: ${unlabeled}`);
  await screenshot(page, "phone");
  await context.close();
}

async function main() {
  check(BASE, "usage: node tests/web/page_flow.mjs <gateway URL>");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
  });
  const problems = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    // Any script error or CSP violation on the page fails the run.
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // An API without the job event stream answers it 404 and the page polls instead.
      const url = message.location().url || "";
      if (/\/v1\/jobs\/[^/]+\/events$/.test(url) && /status of 404/.test(message.text())) return;
      if (message.type() === "error") problems.push(`console error: ${message.text()} (${url})`);
    });
    await page.goto(`${BASE}/`);
    check((await page.title()).startsWith("t2v"), "page title");
    await badRequestShowsServerMessage(page);
    // The 400 above is logged by Chromium as a failed resource load: that one is expected.
    problems.splice(0, problems.length, ...problems.filter((p) => !/status of 400/.test(p)));
    const succeeded = await smallJobSucceedsAndPlays(page);
    const canceled = await longJobCancels(page);
    await recentJobsListBoth(page, succeeded, canceled);
    await apiKeyIsSentAndVideoStillPlays(page, succeeded);
    await context.close();
    await phoneWidth(browser);
  } finally {
    await browser.close();
  }
  check(problems.length === 0, problems.join("\n"));
  console.log("page flow passed");
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});

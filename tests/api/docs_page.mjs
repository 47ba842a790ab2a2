// Opens the docs page (/docs) in Debian's Chromium (playwright-core) and prints, as JSON,
// the operations Swagger UI rendered, the console errors (a CSP violation is one) and any
// request that left the page's origin. Usage: node tests/api/docs_page.mjs <gateway URL>

import { chromium } from "playwright-core";

const BASE = process.argv[2];
const CHROMIUM = process.env.T2V_CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.T2V_SCREENSHOT || "";

const browser = await chromium.launch({ executablePath: CHROMIUM });
try {
  const page = await browser.newPage();
  const errors = [];
  const elsewhere = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("response", (response) => {
    if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
  });
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(BASE) && !url.startsWith("data:")) elsewhere.push(url);
  });
  await page.goto(`${BASE}/docs`);
  await page.locator(".opblock").first().waitFor({ timeout: 30_000 });
  const operations = await page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => [
      block.querySelector(".opblock-summary-method").textContent.trim(),
      block.querySelector(".opblock-summary-path").getAttribute("data-path"),
    ]),
  );
  const title = await page.locator(".info .title").textContent();
  if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(JSON.stringify({ title, operations, errors, elsewhere }));
} finally {
  await browser.close();
}

// Following one job until it is finished: the job's event stream (GET /v1/jobs/{id}/events)
// when the API has it, else polling GET /v1/jobs/{id}. A stream that drops is resumed with
// Last-Event-ID; one the API does not serve (404, or not text/event-stream) means polling.

import { ApiError, type Job, TERMINAL, api, authHeaders, jobPath } from "./api";
import { SseParser } from "./sse";

export const POLL_INTERVAL_MS = 500;
const MAX_BACKOFF_MS = 8000;
const STREAM_RETRIES = 3;

export interface FollowCallbacks {
  onJob: (job: Job) => void;
  /** A problem while following (null once it is over); following goes on unless it is a 404. */
  onError: (error: unknown | null) => void;
}

type StreamEnd = "finished" | "unsupported" | "dropped";

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

async function readStream(
  id: string,
  parser: SseParser,
  callbacks: FollowCallbacks,
  signal: AbortSignal,
): Promise<StreamEnd> {
  const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
  if (parser.lastEventId) headers["Last-Event-ID"] = parser.lastEventId;
  const response = await fetch(`${jobPath(id)}/events`, { headers, signal, cache: "no-store" });
  const type = response.headers.get("Content-Type") ?? "";
  if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
    await response.body?.cancel();
    return "unsupported";
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "dropped";
      for (const event of parser.push(decoder.decode(value, { stream: true }))) {
        if (event.event !== "job") continue;
        const job = JSON.parse(event.data) as Job;
        callbacks.onError(null);
        callbacks.onJob(job);
        if (TERMINAL.has(job.status)) return "finished";
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** Streams the job's updates while the stream works; answers whether the job finished. */
async function stream(id: string, callbacks: FollowCallbacks, signal: AbortSignal): Promise<boolean> {
  const parser = new SseParser();
  for (let attempt = 0; attempt < STREAM_RETRIES && !signal.aborted; attempt += 1) {
    let end: StreamEnd;
    try {
      end = await readStream(id, parser, callbacks, signal);
    } catch {
      end = "dropped";
    }
    if (end === "finished") return true;
    if (end === "unsupported") return false;
    if (!parser.lastEventId) return false; // it never started: polling is the surer path
    await sleep(POLL_INTERVAL_MS, signal);
  }
  return false;
}

async function poll(id: string, callbacks: FollowCallbacks, signal: AbortSignal): Promise<void> {
  let delay = 0;
  while (!signal.aborted) {
    await sleep(delay, signal);
    if (signal.aborted) return;
    try {
      const job = await api<Job>(jobPath(id), { signal });
      callbacks.onError(null);
      callbacks.onJob(job);
      if (TERMINAL.has(job.status)) return;
      delay = POLL_INTERVAL_MS;
    } catch (error) {
      if (signal.aborted) return;
      callbacks.onError(error);
      if (error instanceof ApiError && error.status === 404) return;
      // Back off while the API is unreachable or limiting us; keep following.
      const doubled = Math.min(Math.max(delay, POLL_INTERVAL_MS) * 2, MAX_BACKOFF_MS);
      delay = error instanceof ApiError && error.retryAfter ? error.retryAfter * 1000 : doubled;
    }
  }
}

export async function followJob(id: string, callbacks: FollowCallbacks, signal: AbortSignal): Promise<void> {
  if (await stream(id, callbacks, signal)) return;
  if (!signal.aborted) await poll(id, callbacks, signal);
}

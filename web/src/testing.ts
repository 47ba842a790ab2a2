// Test helpers: a fetch stand-in that answers by path, and job resources.
import { vi } from "vitest";
import type { Job } from "./api";

export type Route = (url: URL, init: RequestInit) => Response | Promise<Response>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

export function mockFetch(route: Route) {
  const calls: Array<{ url: URL; init: RequestInit }> = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init = {}) => {
    const url = new URL(String(input), "http://t2v.test");
    calls.push({ url, init });
    return route(url, init);
  });
  return { spy, calls };
}

export function job(overrides: Partial<Job> = {}): Job {
  return {
    id: "job1",
    status: "queued",
    phase: null,
    progress: null,
    queue_position: 2,
    eta_seconds: 30,
    params: { prompt: "a fox" },
    created_at: "2026-12-07T10:00:00Z",
    cancel_requested: false,
    error: null,
    video: null,
    ...overrides,
  };
}

export const SCHEMA_DOCUMENT = {
  components: {
    schemas: {
      JobRequest: {
        properties: {
          prompt: { type: "string", maxLength: 2000 },
          width: { type: ["integer", "null"], minimum: 16, maximum: 1360, multipleOf: 16, default: 848 },
          num_inference_steps: { type: ["integer", "null"], minimum: 1, maximum: 200, default: 64 },
          guidance_scale: { type: ["number", "null"], minimum: 0, maximum: 20, default: 4.5 },
        },
      },
    },
  },
};

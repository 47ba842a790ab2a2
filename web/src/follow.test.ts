import { describe, expect, it } from "vitest";
import type { Job } from "./api";
import { followJob } from "./follow";
import { job, json, mockFetch } from "./testing";

function eventStream(chunks: string[]): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

const frame = (id: number, resource: Job) => `id: ${id}\nevent: job\ndata: ${JSON.stringify(resource)}\n\n`;

describe("followJob", () => {
  it("reads the job's event stream with the key and resumes it with Last-Event-ID", async () => {
    sessionStorage.setItem("t2v.apiKey", "k1");
    let streams = 0;
    const { calls } = mockFetch((url) => {
      expect(url.pathname).toBe("/v1/jobs/job1/events");
      streams += 1;
      if (streams === 1) return eventStream([frame(1, job({ status: "running" })).slice(0, 20), frame(1, job({ status: "running" })).slice(20)]);
      return eventStream([frame(2, job({ status: "succeeded" }))]);
    });
    const seen: string[] = [];
    await followJob("job1", { onJob: (j) => seen.push(j.status), onError: () => undefined }, new AbortController().signal);
    expect(seen).toEqual(["running", "succeeded"]);
    const headers = calls.map((c) => c.init.headers as Record<string, string>);
    expect(headers[0].Authorization).toBe("Bearer k1");
    expect(headers[0]["Last-Event-ID"]).toBeUndefined();
    expect(headers[1]["Last-Event-ID"]).toBe("1");
  });

  it("polls GET /v1/jobs/{id} when the API has no event stream", async () => {
    let polls = 0;
    const { calls } = mockFetch((url) => {
      if (url.pathname.endsWith("/events")) return json({ error: { code: "not_found", message: "no route" } }, 404);
      polls += 1;
      return json(job({ status: polls < 2 ? "running" : "canceled" }));
    });
    const seen: string[] = [];
    await followJob("job1", { onJob: (j) => seen.push(j.status), onError: () => undefined }, new AbortController().signal);
    expect(seen).toEqual(["running", "canceled"]);
    expect(calls.map((c) => c.url.pathname)).toEqual(["/v1/jobs/job1/events", "/v1/jobs/job1", "/v1/jobs/job1"]);
  });

  it("stops on a 404 for the job itself and reports it", async () => {
    mockFetch(() => json({ error: { code: "not_found", message: "no job job1" } }, 404));
    const errors: unknown[] = [];
    await followJob("job1", { onJob: () => undefined, onError: (e) => errors.push(e) }, new AbortController().signal);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe("no job job1");
  });
});

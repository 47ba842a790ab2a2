import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("dispatches events split across chunks, with CRLF, comments and multi-line data", () => {
    const parser = new SseParser();
    expect(parser.push(": keep-alive\n\nid: 3\r\nevent: jo")).toEqual([]);
    expect(parser.push("b\r\ndata: {\"a\":\r")).toEqual([]);
    const events = parser.push("\ndata: 1}\r\n\r\nid: 4\nevent: job\ndata:x\n\n");
    expect(events).toEqual([
      { id: "3", event: "job", data: "{\"a\":\n1}" },
      { id: "4", event: "job", data: "x" },
    ]);
    expect(parser.lastEventId).toBe("4");
  });

  it("names an event without `event:` a message and keeps the last id", () => {
    const parser = new SseParser();
    expect(parser.push("id: 9\n\ndata: hi\n\n")).toEqual([{ id: "9", event: "message", data: "hi" }]);
  });
});

import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { requestSchema } from "../schema";
import { SCHEMA_DOCUMENT, job, json, mockFetch } from "../testing";
import { JobForm } from "./JobForm";

const schema = requestSchema(SCHEMA_DOCUMENT);

describe("JobForm", () => {
  it("shows every field of the schema with its limits and a webhook field", () => {
    render(<JobForm schema={schema} onSubmitted={vi.fn()} onUnauthorized={vi.fn()} />);
    expect(screen.getByLabelText("Width (px)")).toHaveAccessibleDescription(
      "16 to 1360, a multiple of 16; default 848",
    );
    expect(screen.getByLabelText("Steps")).toBeInTheDocument();
    expect(screen.getByLabelText("Guidance scale")).toBeInTheDocument();
    expect(screen.getByLabelText("Webhook URL")).toBeInTheDocument();
    expect(screen.queryByLabelText("Seed")).toBeNull(); // not in this schema
  });

  it("sends the prompt and only the filled fields, the webhook when it is given", async () => {
    const { calls } = mockFetch(() => json(job(), 202));
    const onSubmitted = vi.fn();
    const user = userEvent.setup();
    render(<JobForm schema={schema} onSubmitted={onSubmitted} onUnauthorized={vi.fn()} />);
    await user.type(screen.getByLabelText("Prompt"), "a fox");
    await user.click(screen.getByText("Settings"));
    await user.type(screen.getByLabelText("Width (px)"), "64");
    await user.click(screen.getByRole("button", { name: "Generate video" }));
    expect(JSON.parse(String(calls[0].init.body))).toEqual({ prompt: "a fox", width: 64 });
    await user.type(screen.getByLabelText("Webhook URL"), "https://example.com/hook");
    await user.click(screen.getByRole("button", { name: "Generate video" }));
    expect(JSON.parse(String(calls[1].init.body))).toEqual({
      prompt: "a fox",
      width: 64,
      webhook: "https://example.com/hook",
    });
    const keys = calls.map((c) => (c.init.headers as Record<string, string>)["Idempotency-Key"]);
    expect(keys[0]).not.toBe(keys[1]);
    expect(onSubmitted).toHaveBeenCalledTimes(2);
  });

  it("shows the API's code and message at the field it names and focuses it", async () => {
    mockFetch(() =>
      json({ error: { code: "invalid_value", message: "width must be a multiple of 16 (got 100)", field: "width" } }, 400),
    );
    const onSubmitted = vi.fn();
    const user = userEvent.setup();
    render(<JobForm schema={schema} onSubmitted={onSubmitted} onUnauthorized={vi.fn()} />);
    await user.type(screen.getByLabelText("Prompt"), "a fox");
    await user.click(screen.getByText("Settings"));
    await user.type(screen.getByLabelText("Width (px)"), "100");
    await user.keyboard("{Enter}");
    const width = screen.getByLabelText("Width (px)");
    expect(width).toHaveAttribute("aria-invalid", "true");
    expect(width).toHaveFocus();
    expect(width).toHaveAccessibleDescription(/width must be a multiple of 16 \(got 100\) \(invalid_value\)/);
    expect(onSubmitted).not.toHaveBeenCalled();
    await user.type(width, "0");
    expect(width).not.toHaveAttribute("aria-invalid");
  });

  it("shows a refusal without a field above the button and opens the key on a 401", async () => {
    mockFetch(() => json({ error: { code: "unauthorized", message: "a valid API key is required" } }, 401));
    const onUnauthorized = vi.fn();
    const user = userEvent.setup();
    render(<JobForm schema={schema} onSubmitted={vi.fn()} onUnauthorized={onUnauthorized} />);
    await user.type(screen.getByLabelText("Prompt"), "a fox");
    await user.click(screen.getByRole("button", { name: "Generate video" }));
    expect(screen.getByRole("alert")).toHaveTextContent("a valid API key is required (unauthorized)");
    expect(onUnauthorized).toHaveBeenCalled();
  });
});

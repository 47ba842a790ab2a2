import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { job, json, mockFetch } from "../testing";
import { JobHistory } from "./JobHistory";

describe("JobHistory", () => {
  it("pages with the cursor and filters by status", async () => {
    const { calls } = mockFetch((url) => {
      const cursor = url.searchParams.get("cursor");
      const status = url.searchParams.get("status");
      if (status === "failed") return json({ data: [], next_cursor: null });
      if (!cursor) return json({ data: [job({ id: "a", params: { prompt: "first" } })], next_cursor: "c1" });
      return json({ data: [job({ id: "b", status: "succeeded", params: { prompt: "second" } })], next_cursor: null });
    });
    const onOpen = vi.fn();
    const user = userEvent.setup();
    const followed = job({ id: "a", status: "running", params: { prompt: "first" } });
    render(<JobHistory current={followed} reloadToken={0} onOpen={onOpen} />);
    const list = await screen.findByRole("list");
    await within(list).findByText("first");
    const first = within(list).getByRole("button", { name: /first/ });
    expect(first).toHaveAttribute("aria-current", "true");
    expect(first).toHaveTextContent("running"); // the followed job's status, not the list's

    await user.click(screen.getByRole("button", { name: "Load more" }));
    await within(list).findByText("second");
    expect(screen.queryByRole("button", { name: "Load more" })).toBeNull();
    expect(calls[1].url.searchParams.get("cursor")).toBe("c1");
    await user.click(within(list).getByRole("button", { name: /second/ }));
    expect(onOpen).toHaveBeenCalledWith("b");
    await user.selectOptions(screen.getByLabelText("Show"), "failed");
    expect(await screen.findByText("No failed jobs.")).toBeInTheDocument();
    expect(calls.at(-1)?.url.searchParams.get("status")).toBe("failed");
  });
});

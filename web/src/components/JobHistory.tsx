// Job history: pages of GET /v1/jobs (cursor), newest first, filtered by status.

import { useCallback, useEffect, useRef, useState } from "react";
import { type Job, type JobList, api, describeError } from "../api";
import { formatTime } from "../format";

export const PAGE_SIZE = 10;
const STATUSES = ["queued", "running", "succeeded", "failed", "canceled"];

interface Props {
  /** The followed job, shown with its latest status where the page lists it. */
  current: Job | null;
  /** Changes whenever the list should be read again (a job submitted or finished, a new key). */
  reloadToken: number;
  onOpen: (id: string) => void;
}

export function JobHistory({ current, reloadToken, onOpen }: Props) {
  const [status, setStatus] = useState("");
  const [jobs, setJobs] = useState<Job[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [message, setMessage] = useState("");
  const [loading, setLoading] = useState(false);
  const generation = useRef(0); // only the latest request's answer is shown

  const load = useCallback(async (append: boolean, after: string | null) => {
    const mine = ++generation.current;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (status) params.set("status", status);
    if (append && after) params.set("cursor", after);
    setLoading(true);
    try {
      const page = await api<JobList>(`/v1/jobs?${params}`);
      if (mine !== generation.current) return;
      setJobs((before) => {
        const all = append ? [...before, ...page.data] : page.data;
        setMessage(all.length ? "" : status ? `No ${status} jobs.` : "No jobs yet.");
        return all;
      });
      setCursor(page.next_cursor);
    } catch (error) {
      if (mine === generation.current) setMessage(describeError(error));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, [status]);

  useEffect(() => {
    void load(false, null);
  }, [load, reloadToken]);

  return (
    <section className="panel" aria-labelledby="recent-heading">
      <div className="section-head">
        <h2 id="recent-heading">Job history</h2>
        <div className="list-tools">
          <label htmlFor="status-filter">Show</label>
          <select id="status-filter" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
          <button type="button" id="refresh-button" onClick={() => void load(false, null)}>Refresh</button>
        </div>
      </div>
      <p id="list-message" className="hint" role="status">{message}</p>
      <ul id="job-list" className="job-list" aria-busy={loading}>
        {jobs.map((listed) => {
          const job = current && current.id === listed.id ? current : listed;
          return (
          <li key={job.id}>
            <button
              type="button"
              className="job-row"
              data-id={job.id}
              aria-current={job === current ? "true" : undefined}
              onClick={() => onOpen(job.id)}
            >
              <span className="badge" data-status={job.status}>{job.status}</span>
              <span className="job-row-prompt">{typeof job.params?.prompt === "string" ? job.params.prompt : job.id}</span>
              <time dateTime={job.created_at}>{formatTime(job.created_at)}</time>
            </button>
          </li>
          );
        })}
      </ul>
      {cursor && (
        <button type="button" id="more-button" disabled={loading} onClick={() => void load(true, cursor)}>Load more</button>
      )}
    </section>
  );
}

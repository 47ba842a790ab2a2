// The job being followed: status, phase, queue position, progress bar and ETA, live from the
// job's event stream (or polling); cancel while it runs; the video and its download once done.

import { forwardRef, useEffect, useRef, useState } from "react";
import { type Job, TERMINAL, api, authHeaders, describeError, jobPath, storedKey } from "../api";
import { followJob } from "../follow";
import { formatBytes, formatEta, percentOf, progressText, statusSentence } from "../format";

interface Props {
  initial: Job;
  onChange: (job: Job) => void;
}

function useVideoSource(job: Job): { source: string | null; error: string } {
  const [state, setState] = useState<{ source: string | null; error: string }>({ source: null, error: "" });
  const ready = job.status === "succeeded" && job.video !== null;
  useEffect(() => {
    if (!ready) {
      setState({ source: null, error: "" });
      return;
    }
    const path = `${jobPath(job.id)}/video`;
    if (!storedKey()) {
      setState({ source: path, error: "" });
      return;
    }
    // A <video> element cannot send the Authorization header: fetch the file with it.
    const controller = new AbortController();
    let objectUrl: string | null = null;
    fetch(path, { headers: authHeaders(), signal: controller.signal })
      .then(async (response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        objectUrl = URL.createObjectURL(await response.blob());
        setState({ source: objectUrl, error: "" });
      })
      .catch((error: Error) => {
        if (!controller.signal.aborted) setState({ source: null, error: `Could not load the video: ${error.message}.` });
      });
    return () => {
      controller.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [job.id, ready]);
  return state;
}

export const JobView = forwardRef<HTMLHeadingElement, Props>(function JobView({ initial, onChange }, headingRef) {
  const [job, setJob] = useState(initial);
  const [followError, setFollowError] = useState("");
  const [actionError, setActionError] = useState("");
  const [canceling, setCanceling] = useState(false);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;

  useEffect(() => {
    setJob(initial);
    setActionError("");
    setFollowError("");
    if (TERMINAL.has(initial.status)) return;
    const controller = new AbortController();
    void followJob(
      initial.id,
      {
        onJob: (next) => {
          setJob(next);
          onChangeRef.current(next);
        },
        onError: (error) => setFollowError(error === null ? "" : describeError(error)),
      },
      controller.signal,
    );
    return () => controller.abort();
  }, [initial]);

  const video = useVideoSource(job);
  const finished = TERMINAL.has(job.status);
  const percent = percentOf(job);

  async function cancel() {
    setCanceling(true);
    setActionError("");
    try {
      const next = await api<Job>(`${jobPath(job.id)}/cancel`, { method: "POST" });
      setJob(next);
      onChangeRef.current(next);
    } catch (error) {
      setActionError(describeError(error));
    } finally {
      setCanceling(false);
    }
  }

  const failure = job.status === "failed" && job.error
    ? `${job.error.message} (${job.error.code}).${job.error.retryable ? " Submitting again may work." : ""}`
    : "";
  const prompt = typeof job.params?.prompt === "string" ? job.params.prompt : "";
  return (
    <section className="panel" id="job-panel" aria-labelledby="job-heading">
      <h2 id="job-heading" ref={headingRef} tabIndex={-1}>
        Job <code id="job-id">{job.id}</code>
      </h2>
      <p id="job-prompt" className="job-prompt">{prompt}</p>
      <dl className="facts">
        <div><dt>Status</dt><dd><span id="job-status" className="badge" data-status={job.status}>{job.status}</span></dd></div>
        <div><dt>Phase</dt><dd id="job-phase">{job.phase ?? "-"}</dd></div>
        <div><dt>Queue position</dt><dd id="job-queue">{job.queue_position ? String(job.queue_position) : "-"}</dd></div>
        <div><dt>Time left</dt><dd id="job-eta">{finished ? "-" : formatEta(job.eta_seconds)}</dd></div>
      </dl>
      <div className="progress-row">
        <label htmlFor="job-progress">Progress</label>
        {/* Indeterminate while queued: no value. */}
        <progress id="job-progress" max={100} value={job.status === "queued" ? undefined : percent} />
        <span id="job-progress-text" className="progress-text">{progressText(job)}</span>
      </div>
      {/* Announces status and phase changes only, not every step. */}
      <p id="job-announcer" className="visually-hidden" aria-live="polite" aria-atomic="true">{statusSentence({ ...job, queue_position: null })}</p>
      <p id="job-error" className="form-error" role="alert">{failure || actionError || followError || video.error}</p>
      {!finished && (
        <div className="actions">
          <button type="button" id="cancel-button" onClick={cancel} disabled={canceling || job.cancel_requested}>
            {canceling || job.cancel_requested ? "Canceling..." : "Cancel job"}
          </button>
        </div>
      )}
      {video.source && job.video && (
        <div id="video-area" className="video-area">
          <video id="job-video" src={video.source} controls playsInline preload="metadata" aria-label={`Video for: ${prompt || job.id}`} />
          <p className="video-meta">
            <a id="download-link" className="button-link" href={video.source} download={`t2v-${job.id}.mp4`}>Download MP4</a>
            <span id="video-facts">
              {`${job.video.width}x${job.video.height}, ${job.video.num_frames} frames at ${job.video.fps} fps (${job.video.duration_s.toFixed(2)} s), ${formatBytes(job.video.bytes)}`}
            </span>
          </p>
        </div>
      )}
    </section>
  );
});

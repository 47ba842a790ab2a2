import type { Job } from "./api";

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatTime(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function formatEta(seconds: number | null | undefined): string {
  if (typeof seconds !== "number") return "-";
  const rounded = Math.max(0, Math.round(seconds));
  if (rounded < 120) return `about ${rounded} s`;
  return `about ${Math.round(rounded / 60)} min`;
}

/** The job's progress as 0..100: full once it succeeded, none while queued. */
export function percentOf(job: Job): number {
  if (job.status === "succeeded") return 100;
  return job.progress ? Math.max(0, Math.min(100, job.progress.percent)) : 0;
}

export function progressText(job: Job): string {
  if (job.status === "succeeded") return "100%";
  const p = job.progress;
  if (!p) return job.status === "queued" ? "waiting" : "";
  const steps = `step ${p.step} of ${p.total} (${Math.round(p.percent)}%)`;
  return p.attempt && p.attempt > 1 ? `${steps}, attempt ${p.attempt}` : steps;
}

export function statusSentence(job: Job): string {
  switch (job.status) {
    case "queued":
      return job.queue_position ? `Queued, position ${job.queue_position}.` : "Queued.";
    case "running":
      return `Running${job.phase ? `: ${job.phase}` : ""}${job.cancel_requested ? ", cancel requested" : ""}.`;
    case "succeeded":
      return "Succeeded: the video is ready.";
    case "failed":
      return `Failed: ${job.error ? job.error.message : "unknown error"}.`;
    default:
      return "Canceled.";
  }
}

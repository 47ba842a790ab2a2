// Talking to the t2v API: JSON over fetch, the API key from sessionStorage as a Bearer token,
// and the API's error body ({error: {code, message, field}}) turned into an ApiError.

export const KEY_STORAGE = "t2v.apiKey";
export const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

export interface Progress {
  step: number;
  total: number;
  percent: number;
  attempt?: number;
}

export interface Video {
  sha256: string;
  bytes: number;
  width: number;
  height: number;
  num_frames: number;
  fps: number;
  duration_s: number;
}

export interface Job {
  id: string;
  status: string;
  phase: string | null;
  progress: Progress | null;
  queue_position: number | null;
  eta_seconds: number | null;
  params: Record<string, unknown> & { prompt?: string };
  created_at: string;
  cancel_requested: boolean;
  error: { code: string; message: string; retryable?: boolean } | null;
  video: Video | null;
}

export interface JobList {
  data: Job[];
  next_cursor: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  readonly retryAfter: number | null;

  constructor(status: number, body: { code?: string; message?: string; field?: string }, retryAfter: string | null) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || `http_${status}`;
    this.field = body.field || null;
    const seconds = Number(retryAfter);
    this.retryAfter = retryAfter !== null && seconds > 0 ? seconds : null;
  }
}

export function storedKey(): string {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage blocked by policy: run without a key
  }
}

export function storeKey(key: string): boolean {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    return true;
  } catch {
    return false;
  }
}

export function authHeaders(): Record<string, string> {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(), ...options.headers };
  const init: RequestInit = { method: options.method ?? "GET", headers, signal: options.signal };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data as { error?: object } | null)?.error ?? { message: text.trim() || response.statusText };
    throw new ApiError(response.status, error, response.headers.get("Retry-After"));
  }
  return data as T;
}

export const jobPath = (id: string): string => `/v1/jobs/${encodeURIComponent(id)}`;

/** A sentence for people: the API's own message, with what to do about it. */
export function describeError(error: unknown): string {
  if (!(error instanceof ApiError)) {
    const reason = error instanceof Error ? error.message : String(error);
    return `Could not reach the API (${reason}). Check the connection and try again.`;
  }
  const code = ` (${error.code})`;
  if (error.status === 401) return `${error.message}${code}. Enter your API key under "API key".`;
  if (error.status === 429 && error.retryAfter) {
    return `${error.message}${code}. Try again in ${error.retryAfter} s.`;
  }
  return `${error.message}${code}`;
}

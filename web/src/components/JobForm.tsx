// The prompt form: every request field with its limits from the API's schema. The server's
// rules are the only rules (noValidate): a refused request shows the API's code and message
// next to the field it names, or above the button.

import { type FormEvent, useEffect, useRef, useState } from "react";
import { ApiError, type Job, api, describeError } from "../api";
import { type FieldSpec, type RequestSchema, describeLimits, isInteger } from "../schema";

interface Props {
  schema: RequestSchema | null;
  onSubmitted: (job: Job) => void;
  onUnauthorized: () => void;
}

type Values = Record<string, string>;
type Errors = Record<string, string>;

function FieldInput({ spec, value, error, onChange }: {
  spec: FieldSpec;
  value: string;
  error: string | undefined;
  onChange: (value: string) => void;
}) {
  const hintId = `${spec.name}-hint`;
  const errorId = `${spec.name}-error`;
  const common = {
    id: spec.name,
    name: spec.name,
    value,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": error ? `${errorId} ${hintId}` : hintId,
  };
  const s = spec.schema;
  let input;
  if (spec.kind === "text") {
    input = <textarea {...common} rows={2} maxLength={s.maxLength} onChange={(e) => onChange(e.target.value)} />;
  } else if (spec.kind === "url") {
    input = <input {...common} type="url" inputMode="url" autoComplete="url" placeholder="https://example.com/hook" onChange={(e) => onChange(e.target.value)} />;
  } else {
    const integer = isInteger(s);
    input = (
      <input
        {...common}
        type="text"
        inputMode={integer ? "numeric" : "decimal"}
        placeholder={s.default !== undefined && s.default !== null ? String(s.default) : ""}
        onChange={(e) => onChange(e.target.value)}
      />
    );
  }
  return (
    <div className="field">
      <label htmlFor={spec.name}>{spec.label}</label>
      {input}
      <p className="hint" id={hintId}>{describeLimits(s)}</p>
      <p className="field-error" id={errorId}>{error ?? ""}</p>
    </div>
  );
}

export function buildPayload(values: Values, schema: RequestSchema): { payload: Record<string, unknown>; errors: Errors } {
  const payload: Record<string, unknown> = { prompt: values.prompt ?? "" };
  const errors: Errors = {};
  for (const spec of [...schema.fields, schema.webhook]) {
    const raw = (values[spec.name] ?? "").trim();
    if (raw === "") continue; // empty: the model's default, and no webhook
    if (spec.kind === "number") {
      const number = Number(raw);
      if (!Number.isFinite(number)) errors[spec.name] = "Enter a number.";
      else payload[spec.name] = number;
    } else {
      payload[spec.name] = spec.kind === "url" ? raw : values[spec.name];
    }
  }
  return { payload, errors };
}

export function JobForm({ schema, onSubmitted, onUnauthorized }: Props) {
  const [values, setValues] = useState<Values>({ prompt: "" });
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState("");
  const [busy, setBusy] = useState(false);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const pending = useRef<{ body: string; key: string } | null>(null);
  const focusField = useRef<string | null>(null);
  const inFlight = useRef(false); // a double click lands before React re-renders the button

  useEffect(() => {
    if (focusField.current) {
      document.getElementById(focusField.current)?.focus();
      focusField.current = null;
    }
  });

  const set = (name: string) => (value: string) => {
    setValues((v) => ({ ...v, [name]: value }));
    setErrors((e) => {
      if (!(name in e)) return e;
      const rest = { ...e };
      delete rest[name];
      return rest;
    });
  };

  const showFieldErrors = (found: Errors) => {
    setErrors(found);
    const first = ["prompt", ...(schema?.fields ?? []).map((f) => f.name), "webhook"].find((n) => n in found);
    if (first && first !== "prompt") setSettingsOpen(true);
    focusField.current = first ?? null;
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (inFlight.current || !schema) return;
    setFormError("");
    const { payload, errors: found } = buildPayload(values, schema);
    if (Object.keys(found).length > 0) {
      showFieldErrors(found);
      return;
    }
    setErrors({});
    const body = JSON.stringify(payload);
    // A retry of the same body reuses its key: the API answers the job it already made.
    if (!pending.current || pending.current.body !== body) pending.current = { body, key: crypto.randomUUID() };
    setBusy(true);
    inFlight.current = true;
    try {
      const job = await api<Job>("/v1/jobs", {
        method: "POST",
        body: payload,
        headers: { "Idempotency-Key": pending.current.key },
      });
      pending.current = null;
      onSubmitted(job);
    } catch (error) {
      if (error instanceof ApiError && error.status < 500 && error.status !== 429) pending.current = null;
      const known = error instanceof ApiError && error.field && (error.field === "prompt" || error.field in payload || schema.fields.some((f) => f.name === error.field));
      if (known && error instanceof ApiError && error.field) {
        showFieldErrors({ [error.field]: `${error.message} (${error.code})` });
      } else {
        setFormError(describeError(error));
        if (error instanceof ApiError && error.status === 401) onUnauthorized();
      }
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  }

  const promptSchema = schema?.prompt ?? {};
  return (
    <section className="panel" aria-labelledby="new-heading">
      <h2 id="new-heading">New video</h2>
      <form id="job-form" noValidate onSubmit={submit}>
        <div className="field">
          <label htmlFor="prompt">Prompt</label>
          <textarea
            id="prompt"
            name="prompt"
            rows={3}
            required
            maxLength={promptSchema.maxLength}
            value={values.prompt}
            aria-invalid={errors.prompt ? true : undefined}
            aria-describedby={errors.prompt ? "prompt-error prompt-hint" : "prompt-hint"}
            placeholder="a red fox running through fresh snow"
            onChange={(e) => set("prompt")(e.target.value)}
          />
          <p className="hint" id="prompt-hint">{describeLimits(promptSchema)}</p>
          <p className="field-error" id="prompt-error">{errors.prompt ?? ""}</p>
        </div>
        <details id="settings" open={settingsOpen} onToggle={(e) => setSettingsOpen(e.currentTarget.open)}>
          <summary>Settings</summary>
          <p className="hint">Leave a field empty for the model's default.</p>
          <div className="grid">
            {(schema?.fields ?? []).map((spec) => (
              <FieldInput key={spec.name} spec={spec} value={values[spec.name] ?? ""} error={errors[spec.name]} onChange={set(spec.name)} />
            ))}
          </div>
          {schema && <FieldInput spec={schema.webhook} value={values.webhook ?? ""} error={errors.webhook} onChange={set("webhook")} />}
        </details>
        <p id="form-error" className="form-error" role="alert">{formError}</p>
        <button type="submit" id="submit-button" className="primary" disabled={busy || !schema} aria-busy={busy}>
          {busy ? "Submitting..." : schema ? "Generate video" : "Loading the form..."}
        </button>
      </form>
    </section>
  );
}

// The t2v web UI: the form, the followed job, the history and the API key.

import { useCallback, useEffect, useRef, useState } from "react";
import { type Job, TERMINAL, api, describeError, jobPath } from "./api";
import { ApiKey } from "./components/ApiKey";
import { JobForm } from "./components/JobForm";
import { JobHistory } from "./components/JobHistory";
import { JobView } from "./components/JobView";
import { type RequestSchema, requestSchema } from "./schema";

function jobFromHash(): string | null {
  return new URLSearchParams(location.hash.slice(1)).get("job");
}

export function App() {
  const [schema, setSchema] = useState<RequestSchema | null>(null);
  const [schemaError, setSchemaError] = useState("");
  const [job, setJob] = useState<Job | null>(null);
  const [live, setLive] = useState<Job | null>(null); // the followed job's latest state
  const [openError, setOpenError] = useState("");
  const [reloadToken, setReloadToken] = useState(0);
  const [keyOpen, setKeyOpen] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const focusJob = useRef(false);
  const lastStatus = useRef<string | null>(null);

  useEffect(() => {
    api<unknown>("/openapi.json")
      .then((document) => setSchema(requestSchema(document)))
      .catch((error) => setSchemaError(`The form's limits could not be read: ${describeError(error)}`));
  }, []);

  const show = useCallback((next: Job, focus: boolean) => {
    lastStatus.current = next.status;
    focusJob.current = focus;
    setOpenError("");
    setJob(next);
    setLive(next);
    history.replaceState(null, "", `#job=${encodeURIComponent(next.id)}`);
  }, []);

  const open = useCallback(async (id: string, focus: boolean) => {
    try {
      show(await api<Job>(jobPath(id)), focus);
    } catch (error) {
      setOpenError(describeError(error));
    }
  }, [show]);

  useEffect(() => {
    const id = jobFromHash();
    if (id) void open(id, false);
  }, [open]);

  useEffect(() => {
    if (job && focusJob.current) {
      focusJob.current = false;
      heading.current?.scrollIntoView({ block: "start" });
      heading.current?.focus({ preventScroll: true });
    }
  }, [job]);

  const changed = useCallback((next: Job) => {
    // The history shows the new status once the job is finished.
    if (TERMINAL.has(next.status) && lastStatus.current !== next.status) setReloadToken((n) => n + 1);
    lastStatus.current = next.status;
    setLive(next);
  }, []);

  return (
    <>
      <a className="skip-link" href="#main">Skip to content</a>
      <header className="site-header">
        <h1>t2v</h1>
        <p>Type a prompt, get a video.</p>
      </header>
      <main id="main">
        <div className="column">
          {schemaError && <p className="form-error" role="alert">{schemaError}</p>}
          <JobForm
            schema={schema}
            onSubmitted={(submitted) => {
              show(submitted, true);
              setReloadToken((n) => n + 1);
            }}
            onUnauthorized={() => setKeyOpen(true)}
          />
          {openError && <p className="form-error" role="alert">{openError}</p>}
          {job && <JobView ref={heading} initial={job} onChange={changed} />}
        </div>
        <div className="column">
          <JobHistory current={live} reloadToken={reloadToken} onOpen={(id) => void open(id, true)} />
          <ApiKey open={keyOpen} onToggle={setKeyOpen} onChanged={() => setReloadToken((n) => n + 1)} />
        </div>
      </main>
    </>
  );
}

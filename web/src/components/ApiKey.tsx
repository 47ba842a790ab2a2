// The API key: kept for this tab only (sessionStorage) and sent as a Bearer token.

import { type FormEvent, useState } from "react";
import { storeKey, storedKey } from "../api";

interface Props {
  open: boolean;
  onToggle: (open: boolean) => void;
  onChanged: () => void;
}

export function ApiKey({ open, onToggle, onChanged }: Props) {
  const [value, setValue] = useState(storedKey);
  const [state, setState] = useState("");

  function save(event: FormEvent) {
    event.preventDefault();
    const key = value.trim();
    if (!storeKey(key)) setState("This browser does not allow storing the key.");
    else setState(key ? "Key saved." : "No key: requests go without one.");
    onChanged();
  }

  function forget() {
    setValue("");
    storeKey("");
    setState("Key forgotten.");
    onChanged();
  }

  return (
    <section className="panel" aria-labelledby="key-heading">
      <details id="key-details" open={open} onToggle={(e) => onToggle(e.currentTarget.open)}>
        <summary><h2 id="key-heading">API key</h2></summary>
        <form id="key-form" onSubmit={save}>
          <div className="field">
            <label htmlFor="api-key">API key</label>
            <input
              id="api-key"
              name="api-key"
              type="password"
              autoComplete="off"
              spellCheck={false}
              value={value}
              aria-describedby="api-key-hint"
              onChange={(e) => setValue(e.target.value)}
            />
            <p className="hint" id="api-key-hint">
              Kept in this tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.
              Leave it empty when the API runs open.
            </p>
          </div>
          <div className="actions">
            <button type="submit">Save key</button>
            <button type="button" id="forget-key" onClick={forget}>Forget key</button>
            <span id="key-state" role="status">{state}</span>
          </div>
        </form>
      </details>
    </section>
  );
}

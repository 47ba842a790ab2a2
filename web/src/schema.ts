// The form's fields and their limits, read from the API's own description (/openapi.json,
// components.schemas.JobRequest), so the page shows the rules the server enforces.

export interface FieldSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  multipleOf?: number;
  maxLength?: number;
  format?: string;
  enum?: unknown[];
}

export interface FieldSpec {
  name: string;
  label: string;
  kind: "text" | "number" | "url";
  schema: FieldSchema;
}

// Order and wording on the page; a field the schema does not list is left out.
const FIELDS: Array<Omit<FieldSpec, "schema">> = [
  { name: "negative_prompt", label: "Negative prompt", kind: "text" },
  { name: "width", label: "Width (px)", kind: "number" },
  { name: "height", label: "Height (px)", kind: "number" },
  { name: "num_frames", label: "Frames", kind: "number" },
  { name: "duration_s", label: "or seconds", kind: "number" },
  { name: "fps", label: "Frame rate (fps)", kind: "number" },
  { name: "num_inference_steps", label: "Steps", kind: "number" },
  { name: "guidance_scale", label: "Guidance scale", kind: "number" },
  { name: "seed", label: "Seed", kind: "number" },
];

// The webhook is asked for even when the schema does not list it yet; it is sent only when filled.
export const WEBHOOK_FIELD: FieldSpec = {
  name: "webhook",
  label: "Webhook URL",
  kind: "url",
  schema: { description: "called once the job is finished (optional)", format: "uri" },
};

export interface RequestSchema {
  prompt: FieldSchema;
  fields: FieldSpec[];
  webhook: FieldSpec;
}

export function requestSchema(document: unknown): RequestSchema {
  const doc = document as { components?: { schemas?: { JobRequest?: { properties?: Record<string, FieldSchema> } } } };
  const properties = doc.components?.schemas?.JobRequest?.properties ?? {};
  const fields = FIELDS.filter((field) => field.name in properties).map((field) => ({
    ...field,
    schema: properties[field.name],
  }));
  const webhookSchema = properties.webhook;
  return {
    prompt: properties.prompt ?? {},
    fields,
    webhook: webhookSchema ? { ...WEBHOOK_FIELD, schema: { ...WEBHOOK_FIELD.schema, ...webhookSchema } } : WEBHOOK_FIELD,
  };
}

export function isInteger(schema: FieldSchema): boolean {
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return types.includes("integer");
}

/** The field's limits in words, e.g. "16 to 1360, a multiple of 16; default 480". */
export function describeLimits(schema: FieldSchema): string {
  const parts: string[] = [];
  const numbers = (schema.enum ?? []).filter((v): v is number => typeof v === "number");
  if (numbers.length > 6) {
    parts.push(`one of ${numbers.slice(0, 4).join(", ")}, ... ${numbers[numbers.length - 1]}`);
  } else if (numbers.length > 0) {
    parts.push(`one of ${numbers.join(", ")}`);
  } else if (schema.minimum !== undefined && schema.maximum !== undefined) {
    parts.push(`${schema.minimum} to ${schema.maximum}`);
  } else if (schema.exclusiveMinimum !== undefined && schema.maximum !== undefined) {
    parts.push(`above ${schema.exclusiveMinimum}, at most ${schema.maximum}`);
  } else if (schema.minimum !== undefined) {
    parts.push(`at least ${schema.minimum}`);
  } else if (schema.maximum !== undefined) {
    parts.push(`at most ${schema.maximum}`);
  }
  if (schema.multipleOf !== undefined) parts.push(`a multiple of ${schema.multipleOf}`);
  if (schema.maxLength !== undefined) parts.push(`up to ${schema.maxLength} characters`);
  let text = parts.join(", ");
  if (schema.description) text = text ? `${text} (${schema.description})` : schema.description;
  if (schema.default !== undefined && schema.default !== null && schema.default !== "") {
    text = `${text}${text ? "; " : ""}default ${String(schema.default)}`;
  }
  return text;
}

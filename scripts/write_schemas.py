"""Write the event data schemas that are generated from rust_infer's job contract.

`job.submit` carries a request body, so its schema is `rust_infer.request_schema()` (the
mochi-1 profile's defaults, the cluster's model): the contract is the only definition of the
request rules. Run after changing them; tests/test_request_schema.py fails while the
committed file differs from what this writes.

    python scripts/write_schemas.py           # write
    python scripts/write_schemas.py --check   # exit 1 when a file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import rust_infer

SCHEMAS = Path(__file__).resolve().parents[1] / "t2v" / "schemas"
WIDTH = 100


def generated() -> dict[str, str]:
    """File name -> the text it must hold."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://t2v.dev/schemas/job.submit/v1.json",
        "title": "dev.t2v.job.submit data, v1",
        "description": "the same JSON object as the body of POST /v1/jobs. Generated from "
        "rust_infer's contract by scripts/write_schemas.py: do not edit",
        **json.loads(rust_infer.request_schema("mochi-1")),
    }
    return {"job.submit.v1.json": render(schema) + "\n"}


def render(value: Any, indent: int = 0, lead: int = 0) -> str:
    """JSON with each object or array on one line when it fits in WIDTH columns (``lead``
    of them already taken), else one member per line (arrays of plain values packed), so
    that the rules stay readable."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(flat) + lead <= WIDTH or not isinstance(value, dict | list) or not value:
        return flat
    if isinstance(value, dict):
        brackets, items = "{}", []
        for key, item in value.items():
            name = json.dumps(key) + ": "
            items.append(name + render(item, indent + 2, indent + 2 + len(name) + 1))
    elif any(isinstance(item, dict | list) for item in value):
        brackets, items = "[]", [render(item, indent + 2, indent + 3) for item in value]
    else:
        brackets, items = "[]", [""]
        for item in map(json.dumps, value):
            if items[-1] and len(items[-1]) + len(item) + indent + 4 > WIDTH:
                items.append("")
            items[-1] += (", " if items[-1] else "") + item
    inner = " " * (indent + 2)
    body = ",\n".join(inner + item for item in items)
    return f"{brackets[0]}\n{body}\n{' ' * indent}{brackets[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = []
    for name, text in generated().items():
        path = SCHEMAS / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/write_schemas.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

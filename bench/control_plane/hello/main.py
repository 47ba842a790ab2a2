"""The bare functions-framework hello-world the control plane is measured against.

Served exactly like submit and status:
    functions-framework --asgi --target hello --source bench/control_plane/hello/main.py
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@functions_framework.aio.http
async def hello(request: Request) -> Response:
    return JSONResponse({"message": "hello", "path": request.url.path})

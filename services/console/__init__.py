"""The operator console and the query API's docs, served by the query API's own process.

The console is one hand-written page (``static/``: HTML, CSS, JavaScript with
inline SVG charts) that reads the query API and polls it while a campaign
runs. ``/docs`` is Swagger UI from the ``swagger-ui-bundle-v2`` package's
files, served here: nothing is fetched from the internet, by the server or by
the browser. Without that package ``/docs`` is a plain local list of the
operations, made from the same OpenAPI document.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs/assets"


def swagger_dir() -> Path | None:
    """Where the installed Swagger UI bundle keeps its files, if it is installed."""
    try:
        vendor = Path(str(resources.files("swagger_ui_bundle") / "vendor"))
    except ModuleNotFoundError:
        return None
    found = sorted(vendor.glob("swagger-ui-*/swagger-ui-bundle.js"))
    return found[-1].parent if found else None


def operations_page(schema: dict[str, object]) -> str:
    """The docs page when Swagger UI is not installed: each operation and its summary."""
    lines = []
    paths = schema.get("paths", {})
    assert isinstance(paths, dict)
    for path, operations in sorted(paths.items()):
        for method, op in operations.items():
            summary = html.escape(str(op.get("summary", "")))
            lines.append(f"<li><code>{method.upper()} {html.escape(path)}</code> {summary}</li>")
    return (
        "<!doctype html><meta charset=utf-8><title>mmbus query API</title>"
        "<h1>mmbus query API</h1><p>The OpenAPI document: "
        '<a href="/openapi.json">/openapi.json</a></p><ul>' + "".join(lines) + "</ul>"
    )


def mount_console(app: FastAPI) -> None:
    app.mount("/console", StaticFiles(directory=STATIC), name="console")

    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_api_route("/", index, include_in_schema=False)
    assets = swagger_dir()
    if assets is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    async def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(operations_page(app.openapi()))
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="mmbus query API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            # Swagger UI would otherwise ask validator.swagger.io to badge the document.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_api_route("/docs", docs, include_in_schema=False)

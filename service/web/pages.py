"""The web pages: memory search and concordance, memory management, reviews and the editor,
login, and the offline API docs.

Every page takes its data from the same function as its JSON route (``lookup_view``,
``concordance_data``, ``stats_data`` of :mod:`service.memory.views`; ``review_data``,
``review_list_data`` of :mod:`service.review.views`) and only renders it: Jinja2
templates in ``service/web/templates`` (autoescaped), scripts and styles in ``service/web/static``
(written here, no CDN). Pages answer errors as HTML with the API's error codes. Reading
pages need the read key where reads are closed; everything that changes data goes through the
JSON API with the login cookie and the page's CSRF token (``service.security.session``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from service.errors import ServiceError
from service.memory.store import lang_family
from service.memory.views import LookupQuery, concordance_data, lookup_view, stats_data
from service.review.views import review_data, review_list_data
from service.security.keys import ENV_KEY_NAME, SCOPES, KeyInfo, authorize, keyring
from service.security.proxy import client_address
from service.security.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    check_csrf,
    csrf_token,
    sessions,
    set_cookies,
    who,
)
from service.web.middleware import CONTENT_SECURITY_POLICY
from service.web.state import State

HERE = Path(__file__).parent
PAGE_SIZE = 20
KWIC_CONTEXT = 40  # characters of context each side of a concordance hit

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.globals["static"] = lambda path: f"/static/{quote(path)}"
templates = Jinja2Templates(env=_env)


# -- rendering helpers (data in, display structures out) ---------------------------------


def diff_runs(query: str, source: str, edits: list[dict]) -> list[tuple[str, str]]:
    """The stored source as (text, kind) runs from the lookup's edit operations (query →
    source): "same", "changed" (the query has other text there), "added" (not in the query)
    and "missing" (query text the stored source lacks, where it would be)."""
    kinds = {"equal": "same", "replace": "changed", "insert": "added"}
    runs: list[tuple[str, str]] = []
    for edit in edits:
        (q0, q1), (s0, s1) = edit["q"], edit["s"]
        if edit["op"] == "delete":
            runs.append((query[q0:q1], "missing"))
        elif s1 > s0:
            runs.append((source[s0:s1], kinds[edit["op"]]))
    return runs


def kwic(text: str, hits: list[list[int]]) -> dict | None:
    """Keyword in context around the first hit: left, keyword, right."""
    if not hits:
        return None
    start, end = hits[0]
    left = text[max(0, start - KWIC_CONTEXT) : start]
    right = text[end : end + KWIC_CONTEXT]
    return {
        "left": ("…" if start > KWIC_CONTEXT else "") + left,
        "hit": text[start:end],
        "right": right + ("…" if end + KWIC_CONTEXT < len(text) else ""),
        "more": len(hits) - 1,
    }


_STAMP = re.compile(r"^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$")
STAT_LABELS = {
    "units": "units",
    "directions": "language directions",
    "documents": "documents",
    "speakers": "speakers",
    "last_import": "last import",
    "generation": "index generation",
    "database_bytes": "database size",
    "fuzzy_index": "fuzzy index",
    "semantic_index": "semantic index",
}


def tmx_date(stamp: str) -> str:
    """A TMX date (``20261207T185551Z``) as people write it: ``7 December 2026, 18:55 UTC``."""
    match = _STAMP.match(stamp)
    if not match:
        return stamp
    when = datetime(*map(int, match.groups()))
    return f"{when.day} {when:%B %Y, %H:%M} UTC"


def size(n: int) -> str:
    """Bytes for people: ``209648`` → ``204.7 KiB``."""
    if n < 1024:
        return f"{n:,} bytes"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:,.1f}".removesuffix(".0") + f" {unit}"


def stat_value(name: str, value: object) -> str:
    """One statistic for the Memory page (the JSON keeps the raw values)."""
    if value is None:
        return "off"
    if isinstance(value, dict):
        if not value:
            return "none"
        return " · ".join(f"{k.replace('>', ' → ').replace('_', ' ')}: {stat_value(k, v)}"
                          for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return size(value) if name.endswith("bytes") else f"{value:,}"
    if isinstance(value, str):
        if name == "last_import" and not value:
            return "never"
        return tmx_date(value)
    return str(value)


def stats_rows(stats: dict) -> list[tuple[str, str]]:
    """The memory's statistics as (label, text) rows, dates and sizes written for people."""
    return [(STAT_LABELS.get(name, name.replace("_", " ")), stat_value(name, value))
            for name, value in stats.items()]


def signed_in_as(user: KeyInfo | None) -> str:
    """The header's "signed in" line: which key, and the most it may do."""
    if user is None or user.anonymous:
        return ""
    most = max(user.scopes, key=SCOPES.index) if user.scopes else "nothing"
    who = "the server's key" if user.name == ENV_KEY_NAME else f"key “{user.name}”"
    return f"{who} ({most})"


# -- who is asking -----------------------------------------------------------------------


class LoginNeeded(Exception):
    def __init__(self, why: str):
        self.why = why


def _caller(request: Request, scope: str = "read") -> KeyInfo | None:
    """The caller if allowed ``scope``; raises ``LoginNeeded`` where a (valid) key is needed."""
    try:
        return who(request, scope)
    except ServiceError as exc:
        if exc.code in ("invalid_api_key", "session_ended"):
            raise LoginNeeded("expired") from None
        raise LoginNeeded("needed") from None


def _signed_in(request: Request) -> KeyInfo | None:
    known = getattr(request.state, "key", None)
    if known is not None and not known.anonymous:
        return known
    try:
        info = who(request, "read")
    except ServiceError:
        return None
    return None if info.anonymous else info


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    user = _signed_in(request)
    context.update(
        csrf=csrf_token(request),
        user=user,
        can_write=bool(user and user.allows("write")),
        signed_in=signed_in_as(user),
        path=request.url.path,
    )
    response = templates.TemplateResponse(request, template, context, status_code=status)
    set_cookies(request, response)
    return response


def _error_page(request: Request, exc: ServiceError) -> HTMLResponse:
    return render(request, "error.html", status=exc.status, code=exc.code, message=exc.message)


def _login_redirect(request: Request, why: str) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{urlencode({'next': target, 'why': why})}", 303)


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/search"


def create_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/search", 303)

    @router.get("/login")
    def login_form(request: Request, next: str = "/search", why: str = "") -> HTMLResponse:
        return render(request, "login.html", next=_safe_next(next), why=why, error="")

    @router.post("/login")
    def login(
        request: Request,
        key: Annotated[str, Form(max_length=500)],
        csrf: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/search",
    ) -> Response:
        try:
            check_csrf(request, csrf)
            authorize(keyring(request), key, "read", client=client_address(request))
        except ServiceError as exc:
            page = render(request, "login.html", status=exc.status, next=_safe_next(next),
                          why="", error=exc.message)
            page.headers.update(exc.headers or {})
            return page
        response = RedirectResponse(_safe_next(next), 303)
        set_cookies(request, response, session=sessions(request).open(key.strip()))
        return response

    @router.post("/logout")
    def logout(
        request: Request, csrf: Annotated[str, Form(alias=CSRF_FIELD, max_length=100)] = ""
    ) -> Response:
        try:
            check_csrf(request, csrf)
        except ServiceError as exc:
            return _error_page(request, exc)
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            sessions(request).end(token)
        response = RedirectResponse("/search", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @router.get("/search")
    async def search(
        request: Request,
        state: State,
        q: Annotated[str, Query(max_length=100_000)] = "",
        lang: str = "",
        min_fuzzy: Annotated[int, Query(ge=0, le=100)] = 60,
    ) -> Response:
        try:
            _caller(request)
        except LoginNeeded as need:
            return _login_redirect(request, need.why)
        q = q.strip()
        source_lang = lang if lang in ("zh", "en") else _guess_lang(q)
        matches, error = [], None
        if q:
            try:
                query = LookupQuery(text=q, source_lang=source_lang, limit=10,
                                    min_fuzzy=min_fuzzy)
                work = lookup_view(state.memory, query, state.settings.max_segment_chars)
                data = await state.run(work, on_lookup_thread=True)
                matches = data["matches"]
            except ServiceError as exc:
                error = exc
        for match in matches:
            match["diff"] = diff_runs(q, match["source_plain"], match["edits"])
        status = error.status if error else 200
        return render(request, "search.html", status=status, q=q, lang=lang,
                      source_lang=source_lang, min_fuzzy=min_fuzzy, matches=matches,
                      error=error, max_chars=state.settings.max_segment_chars)

    @router.get("/concordance")
    async def concordance(
        request: Request,
        state: State,
        term: Annotated[str, Query(max_length=200)] = "",
        lang: str = "",
        document: Annotated[str, Query(max_length=200)] = "",
        speaker: Annotated[str, Query(max_length=200)] = "",
        whole: bool = False,
        page: Annotated[int, Query(ge=1, le=1000)] = 1,
    ) -> Response:
        try:
            _caller(request)
        except LoginNeeded as need:
            return _login_redirect(request, need.why)
        term = term.strip()
        data = {"units": [], "total": 0, "total_capped": False}
        if term:
            data = await state.run(
                concordance_data, state.memory, term, lang if lang in ("zh", "en") else None,
                PAGE_SIZE, (page - 1) * PAGE_SIZE, whole_word=whole, document=document or None,
                speaker=speaker or None, with_total=True,
            )
        for unit in data["units"]:
            role = "source" if unit["source_hits"] else "target"
            unit["kwic"] = kwic(unit[role], unit[f"{role}_hits"])
            unit["kwic_role"] = role
            unit["kwic_lang"] = lang_family(unit[f"{role}_lang"])
        pages = max(1, -(-data["total"] // PAGE_SIZE))
        base = {"term": term, "lang": lang, "document": document, "speaker": speaker}
        if whole:
            base["whole"] = "true"
        return render(request, "concordance.html", term=term, lang=lang, document=document,
                      speaker=speaker, whole=whole, page=page, pages=pages, data=data,
                      link=lambda p: "/concordance?" + urlencode({**base, "page": p}))

    @router.get("/memory")
    async def memory(request: Request, state: State) -> Response:
        try:
            _caller(request)
        except LoginNeeded as need:
            return _login_redirect(request, need.why)
        stats = await state.run(stats_data, state.memory)
        return render(request, "memory.html", stats=stats_rows(stats))

    @router.get("/review")
    def review_list(request: Request, state: State, job: str = "") -> Response:
        try:
            _caller(request)
        except LoginNeeded as need:
            return _login_redirect(request, need.why)
        job_info = None
        if job:
            try:
                job_info = request.app.state.jobs.get(job).to_json()
            except ServiceError as exc:
                return _error_page(request, exc)
        return render(request, "reviews.html", job=job_info, **review_list_data(state.reviews))

    @router.get("/review/{review_id}")
    async def review_page(review_id: str, request: Request, state: State) -> Response:
        try:
            _caller(request)
        except LoginNeeded as need:
            return _login_redirect(request, need.why)
        try:
            data = await state.run(review_data, state.reviews, review_id)
        except ServiceError as exc:
            return _error_page(request, exc)
        return render(request, "review.html", review_id=review_id, name=data["name"],
                      summary=data["summary"], finished_by=data["finished_by"])

    @router.get("/docs")
    def docs() -> HTMLResponse:
        """Swagger UI 5 (it reads OpenAPI 3.1) from the installed ``fastapi-offline`` package's
        assets: works offline. Its one inline script is allowed by its hash."""
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Concordia API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon.png",
        )
        back = ('<nav style="font-family: sans-serif; margin: -8px -8px 0; padding: .5rem 1.25rem; '
                'background: #17325c;"><a href="/search" style="color: #fff;">'
                '← Concordia pages</a></nav>')
        html = page.body.decode().replace("<body>", "<body>\n" + back, 1)
        hashes = " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in re.findall(r"<script>(.*?)</script>", html, re.S)
        )
        answer = HTMLResponse(html)
        answer.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "script-src 'self'", f"script-src 'self' {hashes}"
        ).replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        return answer

    return router


def _guess_lang(text: str) -> str:
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if cjk * 3 >= len(text.strip()) and cjk else "en"


def install(app: FastAPI) -> None:
    """Mount the static files (ours and Swagger UI's) and add the page routes."""
    import fastapi_offline

    swagger = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/static/swagger", StaticFiles(directory=swagger), name="swagger")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(create_router())

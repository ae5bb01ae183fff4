"""The content studio (`/console/studio`, editors, supervisors and admins; operators are
refused): editors change responses, flows, NLU examples and articles in the browser.

Everything works on the deployment's one draft (dialogs/versions.py): browse the responses,
flows and intents; edit a response in a form or any file as YAML; every keystroke is checked
(`POST /api/studio/check`) by the validator of `supportbot dialogs validate`, problems in Russian
at the form field or the file's line; a save carries the revision the editor loaded and is
refused with 409 when someone saved the file since. The diff against the published version, the
conversation tests run on the draft (results per story), publish with a comment (refused while
the draft has errors or its tests have not passed), the versions with one-click restore.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import BodyPartReader, web

from dialogs.content_tree import FOLDER, check_path, diff_text, fingerprint, write_tree
from dialogs.versions import ContentVersions, PublishRefused
from handoff.console import studio_forms as forms
from handoff.console.security import Me, me
from handoff.console.state import ApiError, console, json_body
from handoff.console.uploads import CONTENT_TYPES, MAX_IMAGE_BYTES, UploadError, read_limited, sniff
from storage.content_store import DraftConflict

ContentTests = Callable[[Path], Awaitable[list[dict[str, Any]]]]


class DraftChat(Protocol):
    """Chats with a draft in an app of its own (supportbot/content_tests.py: DraftTrials)."""

    async def act(
        self, tree: dict[str, bytes], who: str, *, text: str | None = None, press: str | None = None
    ) -> dict[str, Any]: ...

    async def reset(self, who: str) -> None: ...


FOR_EDITORS = "Студия контента — для редакторов, супервизоров и администраторов."
MAX_TEXT_FILE = 512 * 1024


@dataclass
class Studio:
    """What the studio needs from the app: the versions, and how to run the conversation tests
    of a content folder (None: the button says it is not available here)."""

    versions: ContentVersions
    run_tests: ContentTests | None = None
    content_dir: Path | None = None  # files mode: the folder publishes are written to
    chats: Callable[[], DraftChat | None] = lambda: None  # «Попробовать черновик»
    running: set[str] = field(default_factory=set)  # draft fingerprints under test


STUDIO = web.AppKey("studio", Studio)


def add_routes(r: web.UrlDispatcher) -> None:
    """Registers this page's routes on the console app."""
    r.add_get("/studio", page, name="studio")
    r.add_get("/api/studio/draft", draft, name="api:studio-draft")
    r.add_get("/api/studio/file", get_file, name="api:studio-file")
    r.add_post("/api/studio/file", save_file, name="api:studio-save")
    r.add_post("/api/studio/check", check, name="api:studio-check")
    r.add_get("/api/studio/response", get_response, name="api:studio-response")
    r.add_post("/api/studio/response", save_response, name="api:studio-response-save")
    r.add_post("/api/studio/response/check", check_response, name="api:studio-response-check")
    r.add_get("/api/studio/flow", get_flow, name="api:studio-flow")
    r.add_post("/api/studio/flow", save_flow, name="api:studio-flow-save")
    r.add_post("/api/studio/flow/check", check_flow, name="api:studio-flow-check")
    r.add_get("/api/studio/intent", get_intent, name="api:studio-intent")
    r.add_post("/api/studio/intent", save_intent, name="api:studio-intent-save")
    r.add_post("/api/studio/intent/check", check_intent, name="api:studio-intent-check")
    r.add_get("/api/studio/diff", diff, name="api:studio-diff")
    r.add_post("/api/studio/tests", run_tests, name="api:studio-tests")
    r.add_post("/api/studio/publish", publish, name="api:studio-publish")
    r.add_post("/api/studio/try", try_draft, name="api:studio-chat")
    r.add_post("/api/studio/media", upload_media, name="api:studio-media-upload")
    r.add_get("/api/studio/media", get_media, name="api:studio-media")
    r.add_get("/api/studio/versions", versions, name="api:studio-versions")
    r.add_get(r"/api/studio/versions/{id:\d+}/diff", version_diff, name="api:studio-vdiff")
    r.add_post(r"/api/studio/versions/{id:\d+}/restore", restore, name="api:studio-restore")


def _studio(request: web.Request) -> Studio:
    studio = request.app.get(STUDIO)
    if studio is None:
        raise ApiError("студия контента не подключена в этом процессе", 503)
    return studio


def _editor(request: web.Request) -> Me:
    who = me(request)
    if not (who.editor or who.supervisor):
        raise ApiError(FOR_EDITORS, 403)
    return who


def _author(who: Me) -> str:
    return who.login


async def page(request: web.Request) -> web.StreamResponse:
    state = console(request)
    who = me(request)
    if not (who.editor or who.supervisor):
        return state.render(request, "error.html", status=403, message=FOR_EDITORS)
    return state.render(request, "studio.html")


async def _tree(studio: Studio) -> tuple[dict[str, Any], forms.Tree]:
    if studio.content_dir is not None:  # files mode: what changed on disk is a version first
        await studio.versions.seed(studio.content_dir)
    d = await studio.versions.draft()
    return {p: f for p, f in d.files.items()}, d.tree


async def draft(request: web.Request) -> web.Response:
    """The draft: its files (with revisions, changed or not against the published version), the
    catalogue of responses / flows / intents, its problems and its tests' state."""
    _editor(request)
    studio = _studio(request)
    files, tree = await _tree(studio)
    live_id, live = await studio.versions.latest()
    problems = await studio.versions.check(tree)
    run = await studio.versions.test_run(tree)
    return web.json_response(
        {
            "live_id": live_id,
            "fingerprint": fingerprint(tree),
            "files": [
                {
                    "path": p,
                    "revision": f.revision,
                    "changed": live.get(p) != f.data,
                    "text": _is_text(p, f.data),
                }
                for p, f in files.items()
            ],
            "removed": sorted(set(live) - set(tree)),
            "catalogue": forms.catalogue(tree),
            "problems": [forms.problem_json(p) for p in problems],
            "tests": run,
            "tests_running": fingerprint(tree) in studio.running,
            "tests_available": studio.run_tests is not None,
        }
    )


def _is_text(path: str, data: bytes) -> bool:
    if not path.endswith((".yml", ".yaml", ".md", ".txt")):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _path(value: Any) -> str:
    path = str(value or "")
    problem = check_path(path)
    if problem is not None:
        raise ApiError(f"путь «{path}»: {problem}")
    return path


async def get_file(request: web.Request) -> web.Response:
    _editor(request)
    path = _path(request.query.get("path"))
    files, _ = await _tree(_studio(request))
    found = files.get(path)
    if found is None:
        raise ApiError(f"в черновике нет файла {path}", 404)
    if not _is_text(path, found.data):
        raise ApiError(f"{path} — не текстовый файл", 400)
    return web.json_response(
        {"path": path, "text": found.data.decode("utf-8"), "revision": found.revision}
    )


def _conflict(exc: DraftConflict, request: web.Request) -> ApiError:
    when = exc.at.astimezone(console(request).tz).strftime("%H:%M:%S")
    by = exc.updated_by or "другой редактор"
    return ApiError(
        f"Файл {exc.path} уже изменил(а) {by} в {when}, пока вы его правили. Ваши правки не "
        "сохранены: скопируйте их, обновите страницу и внесите снова.",
        409,
    )


async def _save(request: web.Request, path: str, text: str | None, revision: Any) -> int:
    who = _editor(request)
    if not isinstance(revision, int):
        raise ApiError("нужна ревизия файла, которую вы правили (revision)")
    data = None if text is None else text.replace("\r\n", "\n").encode("utf-8")
    if data is not None and len(data) > MAX_TEXT_FILE:
        raise ApiError(f"файл больше {MAX_TEXT_FILE // 1024} КБ")
    try:
        return await _studio(request).versions.save(
            path, data, revision=revision, author=_author(who)
        )
    except DraftConflict as exc:
        raise _conflict(exc, request) from None


async def _problems_with(
    request: web.Request, path: str, text: str
) -> tuple[list[Any], forms.Tree]:
    studio = _studio(request)
    _files, tree = await _tree(studio)
    tree = {**tree, path: text.encode("utf-8")}
    return await studio.versions.check(tree), tree


async def save_file(request: web.Request) -> web.Response:
    """`{path, text, revision}` (text null deletes the file): saved into the draft."""
    body = await json_body(request)
    path = _path(body.get("path"))
    text = body.get("text")
    if text is not None and not isinstance(text, str):
        raise ApiError("text должен быть строкой")
    revision = await _save(request, path, text, body.get("revision"))
    return web.json_response({"path": path, "revision": revision})


async def check(request: web.Request) -> web.Response:
    """`{path, text}`: the draft's problems were this file `text` (nothing is saved)."""
    _editor(request)
    body = await json_body(request)
    path = _path(body.get("path"))
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError("text должен быть строкой")
    problems, _ = await _problems_with(request, path, text)
    return web.json_response({"problems": [forms.problem_json(p) for p in problems]})


async def _file_of(request: web.Request, kind: str, name: str) -> tuple[str, str, int]:
    """The draft file defining the `kind` ("responses" or "flows") item `name`: its path,
    text and revision (for the version check on save)."""
    files, tree = await _tree(_studio(request))
    for item in forms.catalogue(tree)[kind]:
        if item["name"] == name:
            found = files[item["file"]]
            return item["file"], found.data.decode("utf-8"), found.revision
    what = "ответа" if kind == "responses" else "сценария"
    raise ApiError(f"в черновике нет {what} «{name}»", 404)


async def _response_file(request: web.Request, name: str) -> tuple[str, str, int]:
    return await _file_of(request, "responses", name)


async def get_response(request: web.Request) -> web.Response:
    _editor(request)
    name = request.query.get("name", "")
    file, text, revision = await _response_file(request, name)
    try:
        fields: dict[str, Any] | None = forms.response_fields(text, f"{FOLDER}/{file}", name)
        why = None
    except forms.FormError as exc:
        fields, why = None, str(exc)
    return web.json_response(
        {"name": name, "file": file, "revision": revision, "fields": fields, "no_form": why}
    )


async def _with_response(request: web.Request) -> tuple[str, str, str, dict[str, Any]]:
    body = await json_body(request)
    name = str(body.get("name") or "")
    fields = body.get("fields")
    if not isinstance(fields, dict):
        raise ApiError("fields должен быть объектом")
    file, text, _rev = await _response_file(request, name)
    try:
        new = forms.replace_response(text, f"{FOLDER}/{file}", name, fields)
    except forms.FormError as exc:
        raise ApiError(str(exc)) from None
    return name, file, new, body


async def check_response(request: web.Request) -> web.Response:
    """`{name, fields}`: the draft's problems with the response written from the form, each
    with the form field it is at (`v0.text`, ...) when it is in this response."""
    _editor(request)
    name, file, new, _body = await _with_response(request)
    problems, _ = await _problems_with(request, file, new)
    shown = f"{FOLDER}/{file}"
    return web.json_response(
        {
            "problems": [
                forms.problem_json(
                    p, forms.field_of(new, shown, name, p) if p.file == shown else None
                )
                for p in problems
            ],
            "yaml": new,
        }
    )


async def save_response(request: web.Request) -> web.Response:
    name, file, new, body = await _with_response(request)
    revision = await _save(request, file, new, body.get("revision"))
    return web.json_response({"name": name, "file": file, "revision": revision})


async def diff(request: web.Request) -> web.Response:
    _editor(request)
    studio = _studio(request)
    _files, tree = await _tree(studio)
    _live_id, live = await studio.versions.latest()
    return web.json_response({"diff": diff_text(live, tree)})


async def run_tests(request: web.Request) -> web.Response:
    """The conversation tests on the draft as it is now; the result is kept for publishing."""
    who = _editor(request)
    studio = _studio(request)
    if studio.run_tests is None:
        raise ApiError("тесты в этом процессе не запускаются", 503)
    _files, tree = await _tree(studio)
    key = fingerprint(tree)
    errors = [p for p in await studio.versions.check(tree) if not p.warning]
    if errors:
        raise ApiError(f"в черновике ошибки ({len(errors)}): сначала исправьте их", 409)
    if key in studio.running:
        raise ApiError("тесты этого черновика уже идут", 409)
    studio.running.add(key)
    try:
        results = await _run(studio, tree)
    finally:
        studio.running.discard(key)
    await studio.versions.record_tests(tree, results, author=_author(who))
    return web.json_response(await studio.versions.test_run(tree))


async def _run(studio: Studio, tree: forms.Tree) -> list[dict[str, Any]]:
    import tempfile

    assert studio.run_tests is not None
    with tempfile.TemporaryDirectory(prefix="supportbot-studio-tests-") as tmp:
        folder = Path(tmp) / FOLDER
        await asyncio.to_thread(write_tree, tree, folder)
        return await studio.run_tests(folder)


async def publish(request: web.Request) -> web.Response:
    who = _editor(request)
    body = await json_body(request)
    comment = str(body.get("comment") or "").strip()
    if not comment:
        raise ApiError("напишите, что изменилось (комментарий к версии)")
    try:
        vid = await _studio(request).versions.publish(author=_author(who), comment=comment)
    except PublishRefused as exc:
        return web.json_response(
            {"error": str(exc), "problems": [forms.problem_json(p) for p in exc.problems]},
            status=409,
        )
    return web.json_response({"version": vid})


async def versions(request: web.Request) -> web.Response:
    _editor(request)
    listed = await _studio(request).versions.versions()
    live = listed[0]["id"] if listed else None
    return web.json_response({"versions": listed, "live_id": live})


async def version_diff(request: web.Request) -> web.Response:
    _editor(request)
    text = await _studio(request).versions.version_diff(int(request.match_info["id"]))
    if text is None:
        raise ApiError("нет такой версии", 404)
    return web.json_response({"diff": text})


async def restore(request: web.Request) -> web.Response:
    who = _editor(request)
    vid = int(request.match_info["id"])
    try:
        new = await _studio(request).versions.restore(vid, author=_author(who))
    except PublishRefused as exc:
        return web.json_response(
            {"error": str(exc), "problems": [forms.problem_json(p) for p in exc.problems]},
            status=409,
        )
    return web.json_response({"version": new})


async def try_draft(request: web.Request) -> web.Response:
    """`{text}` or `{press: title}` to the draft as a Telegram subscriber of an app running it;
    `{reset: true}` starts the conversation over. The bot's replies (text, buttons, image)."""
    who = _editor(request)
    studio = _studio(request)
    chats = studio.chats()
    if chats is None:
        raise ApiError("попробовать черновик в этом процессе нельзя", 503)
    body = await json_body(request)
    if body.get("reset"):
        await chats.reset(who.login)
        return web.json_response({"replies": [], "intent": None})
    text, press = body.get("text"), body.get("press")
    if not isinstance(text, str) and not isinstance(press, str):
        raise ApiError("нужен text или press")
    _files, tree = await _tree(studio)
    errors = [p for p in await studio.versions.check(tree) if not p.warning]
    if errors:
        raise ApiError(f"в черновике ошибки ({len(errors)}): сначала исправьте их", 409)
    try:
        result = await chats.act(
            tree,
            who.login,
            text=text if isinstance(text, str) else None,
            press=press if isinstance(press, str) else None,
        )
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    except TimeoutError:
        raise ApiError("черновик не ответил за 15 секунд", 504) from None
    return web.json_response(result)


MEDIA = "media"


async def upload_media(request: web.Request) -> web.Response:
    """A multipart `image` (PNG, JPEG or GIF by its bytes, at most 5 MB) saved into the draft
    as `media/<name>`: what a response's `image:` names. It is published with the draft and
    served from the content store, in every process."""
    who = _editor(request)
    if not request.content_type.startswith("multipart/"):
        raise ApiError("картинку присылают формой (multipart) в поле image")
    data, filename = None, None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError("вложенные multipart не принимаются")
        if part.name == "image":
            try:
                data = await read_limited(part, MAX_IMAGE_BYTES)
            except UploadError:
                raise ApiError("картинка больше 5 МБ", 413) from None
            filename = part.filename
        else:
            await part.release()
    if not data:
        raise ApiError("нет картинки (поле image)")
    ext = sniff(data)
    if ext is None:
        raise ApiError("можно только PNG, JPEG или GIF")
    stem = re.sub(r"[^a-z0-9_-]+", "_", Path(filename or "").stem.lower()).strip("_")[:40]
    files, _ = await _tree(_studio(request))
    path = f"{MEDIA}/{stem or 'image'}{ext}"
    while path in files:
        path = f"{MEDIA}/{stem or 'image'}_{secrets.token_hex(3)}{ext}"
    try:
        await _studio(request).versions.save(path, data, revision=0, author=_author(who))
    except DraftConflict as exc:
        raise _conflict(exc, request) from None
    return web.json_response({"path": path, "size": len(data)})


async def get_media(request: web.Request) -> web.Response:
    """An image of the draft (for the form's preview)."""
    _editor(request)
    path = _path(request.query.get("path"))
    files, _ = await _tree(_studio(request))
    found = files.get(path)
    ext = sniff(found.data) if found is not None else None
    if found is None or ext is None:
        raise ApiError(f"в черновике нет картинки {path}", 404)
    return web.Response(
        body=found.data,
        content_type=CONTENT_TYPES[ext],
        headers={"Cache-Control": "private, max-age=60"},
    )


async def _intent_file(request: web.Request, name: str) -> tuple[str, str, int]:
    files, tree = await _tree(_studio(request))
    for item in forms.catalogue(tree)["intents"]:
        if item["name"] == name:
            found = files[item["file"]]
            return item["file"], found.data.decode("utf-8"), found.revision
    raise ApiError(f"в черновике нет интента «{name}»", 404)


async def get_intent(request: web.Request) -> web.Response:
    """An intent's examples, one per line (`[text](entity)` annotations as written)."""
    _editor(request)
    name = request.query.get("name", "")
    file, text, revision = await _intent_file(request, name)
    try:
        examples: list[str] | None = forms.intent_examples(text, file, name)
        why = None
    except forms.FormError as exc:
        examples, why = None, str(exc)
    return web.json_response(
        {"name": name, "file": file, "revision": revision, "examples": examples, "no_form": why}
    )


async def _with_examples(request: web.Request) -> tuple[str, str, dict[str, Any]]:
    body = await json_body(request)
    name = str(body.get("name") or "")
    examples = body.get("examples")
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise ApiError("examples — список строк")
    file, text, _rev = await _intent_file(request, name)
    try:
        new = forms.replace_examples(text, file, name, examples)
    except forms.FormError as exc:
        raise ApiError(str(exc)) from None
    return file, new, body


async def check_intent(request: web.Request) -> web.Response:
    _editor(request)
    file, new, _body = await _with_examples(request)
    problems, _ = await _problems_with(request, file, new)
    return web.json_response({"problems": [forms.problem_json(p) for p in problems]})


async def save_intent(request: web.Request) -> web.Response:
    file, new, body = await _with_examples(request)
    revision = await _save(request, file, new, body.get("revision"))
    return web.json_response({"file": file, "revision": revision})


async def _flow_file(request: web.Request, name: str) -> tuple[str, str, int]:
    return await _file_of(request, "flows", name)


async def get_flow(request: web.Request) -> web.Response:
    """A flow as structured steps: each step's kind, id and keys (values as YAML text)."""
    _editor(request)
    name = request.query.get("name", "")
    file, text, revision = await _flow_file(request, name)
    try:
        fields: dict[str, Any] | None = forms.flow_fields(text, f"{FOLDER}/{file}", name)
        why = None
    except forms.FormError as exc:
        fields, why = None, str(exc)
    return web.json_response(
        {
            "name": name,
            "file": file,
            "revision": revision,
            "fields": fields,
            "no_form": why,
            "kinds": list(forms.STEP_KINDS),
        }
    )


async def _with_flow(request: web.Request) -> tuple[str, str, str, dict[str, Any]]:
    body = await json_body(request)
    name = str(body.get("name") or "")
    fields = body.get("fields")
    if not isinstance(fields, dict):
        raise ApiError("fields должен быть объектом")
    file, text, _rev = await _flow_file(request, name)
    try:
        new = forms.replace_flow(text, f"{FOLDER}/{file}", name, fields)
    except forms.FormError as exc:
        raise ApiError(str(exc)) from None
    return name, file, new, body


async def check_flow(request: web.Request) -> web.Response:
    """`{name, fields}`: the draft's problems with the flow written from the steps, each with
    the step it is in (`step3`) when it is in this flow."""
    _editor(request)
    name, file, new, _body = await _with_flow(request)
    problems, _ = await _problems_with(request, file, new)
    shown = f"{FOLDER}/{file}"
    return web.json_response(
        {
            "problems": [
                forms.problem_json(
                    p, forms.step_of(new, shown, name, p) if p.file == shown else None
                )
                for p in problems
            ]
        }
    )


async def save_flow(request: web.Request) -> web.Response:
    name, file, new, body = await _with_flow(request)
    revision = await _save(request, file, new, body.get("revision"))
    return web.json_response({"name": name, "file": file, "revision": revision})

"""What a person does in Label Studio's own web UI, done with Playwright on the system Chromium (headless).

Selectors are Label Studio 1.23.2's: the login form's `email` and `password` fields, the labeling stream at
`/projects/<id>/data?labeling=1`, the label chips `.lsf-label` (text in `.lsf-label__text`), the image as an
`<img>` inside `.lsf-image` (drawn over by Konva canvases of the same size), and the
`bottombar-submit-button` test id; the projects list's cards (`a.lsf-projects-page__link`, the title in
`.lsf-project-card__title-text`) and the data manager's "Label All Tasks" button.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, FloatRect, Page, ViewportSize, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from scripts.browser import INSTALL_HINT, find_chromium

TIMEOUT_MS = 30_000
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
IMAGE = ".lsf-image img"


class BrowserMissing(Exception):
    pass


@contextmanager
def browser() -> Iterator[Browser]:
    """Headless system Chromium (Playwright's own browser download is not used)."""
    chromium = find_chromium()
    if chromium is None:
        raise BrowserMissing(INSTALL_HINT)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def sign_in(context: BrowserContext, base_url: str, email: str, password: str) -> Page:
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base_url}/user/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/user/login" in page.url:
        raise PermissionError(f"Label Studio refused the sign-in of {email}")
    return page


def choose_password_in_browser(link: str, password: str, screenshot_dir: Path | None = None) -> str:
    """What a new worker does with the link `workers add` printed: opens it, types a password twice and sets it.
    Returns the text of the page that answers (it says the password is set, and links to the sign-in)."""
    with browser() as chromium:
        page = chromium.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(link)
        page.fill("#id_new_password1", password)
        page.fill("#id_new_password2", password)
        with page.expect_navigation():
            page.click("#choose-password")
        if screenshot_dir is not None:
            page.screenshot(path=str(screenshot_dir / "password-chosen.png"))
        if not page.url.endswith("/labeling/password/done/"):
            raise PermissionError(f"the password was not taken: {page.inner_text('body')[:600]}")
        return page.inner_text("body")


INSTRUCTIONS = ".lsf-modal-ls_visible"


def close_instructions(page: Page) -> None:
    """A project that shows its instructions opens them over the task, as a worker first sees it; the worker
    reads them and closes them (the modal's close button)."""
    modal = page.locator(INSTRUCTIONS)
    try:
        modal.wait_for(state="visible", timeout=3000)
    except PlaywrightTimeoutError:
        return
    close = modal.locator(".lsf-modal-ls__close, [aria-label='Close'], button").first
    close.click()
    modal.wait_for(state="hidden")


def draw_box(
    base_url: str,
    email: str,
    password: str,
    project_id: int,
    label: str,
    start: tuple[float, float],
    end: tuple[float, float],
    screenshot_dir: Path | None = None,
    requests_made: list[tuple[str, str]] | None = None,
) -> tuple[float, float, float, float]:
    """Sign in, open the project's next task, draw one `label` box from `start` to `end` (fractions of the
    displayed image) and submit it. Returns the box in image pixels: (x_min, y_min, x_max, y_max).

    `requests_made`, when given, gets every (method, URL) the browser asked for, in order (pages, scripts,
    API calls, the image): what a worker's labeling session sends."""
    with browser() as chromium:
        context = chromium.new_context(viewport=VIEWPORT)
        if requests_made is not None:
            context.on("request", lambda request: requests_made.append((request.method, request.url)))
        page = sign_in(context, base_url, email, password)
        page.goto(f"{base_url}/projects/{project_id}/data?labeling=1")
        image = page.locator(IMAGE)
        image.wait_for(state="visible")
        # The img is there before its pixels: wait for the decoded image (served through a presigned URL).
        page.wait_for_function(
            "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0 }",
            arg=IMAGE,
        )
        natural_width, natural_height = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        close_instructions(page)
        chip = page.locator(".lsf-label").filter(
            has=page.locator(".lsf-label__text", has_text=re.compile(rf"^{re.escape(label)}$"))
        )
        chip.click()
        page.wait_for_function("el => el.className.includes('lsf-label_selected')", arg=chip.element_handle())

        box = image.bounding_box()
        assert box is not None
        (x0, y0), (x1, y1) = ((box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in (start, end))
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=10)
        page.mouse.up()
        if screenshot_dir is not None:
            page.screenshot(path=str(screenshot_dir / "label-studio-drawn.png"))

        with page.expect_response(
            lambda response: (
                response.request.method == "POST" and re.search(r"/api/tasks/\d+/annotations", response.url) is not None
            )
        ) as saved:
            page.get_by_test_id("bottombar-submit-button").click()
        if not saved.value.ok:
            raise RuntimeError(f"Label Studio did not save the annotation: {saved.value.status} {saved.value.text()}")
        if screenshot_dir is not None:
            page.screenshot(path=str(screenshot_dir / "label-studio-submitted.png"))
        context.close()

    def to_pixels(x: float, y: float) -> tuple[float, float]:
        return (x - box["x"]) / box["width"] * natural_width, (y - box["y"]) / box["height"] * natural_height

    (left, top), (right, bottom) = to_pixels(x0, y0), to_pixels(x1, y1)
    return min(left, right), min(top, bottom), max(left, right), max(top, bottom)


# --- the editor, step by step ----------------------------------------------------------------------------------------

Point = tuple[float, float]
SAVED_ANNOTATION = re.compile(r"/api/tasks/\d+/annotations")


class LabelingEditor:
    """Label Studio's editor on the labeling stream's next task, in a signed-in page, driven as a worker drives it:
    the mouse on the image and the keyboard (Backspace deletes the selected region, Escape unselects, Label Studio's
    default hotkeys). Positions are in image pixels; each becomes a whole screen pixel, as a mouse event carries it,
    and what a method returns is where the mouse really was, in image pixels again.

    What the editor holds is read from its store (`window.Htx`, the app store LabelStudio.tsx sets): `result()` is
    the selected annotation serialized as the editor submits it (each region with its `id` and `origin`)."""

    def __init__(self, page: Page, screenshot_dir: Path | None = None) -> None:
        self.page = page
        self.screenshot_dir = screenshot_dir
        width, height = page.locator(IMAGE).evaluate("i => [i.naturalWidth, i.naturalHeight]")
        self.natural_size = (int(width), int(height))

    # --- image pixels and screen pixels ---
    @property
    def image_box(self) -> FloatRect:
        """Where the image is on screen now (the editor's panels may still settle after it opens)."""
        found = self.page.locator(IMAGE).bounding_box()
        if found is None:
            raise RuntimeError("the task's image is not on screen")
        return found

    def screen_point(self, point: Point) -> tuple[int, int]:
        box, (width, height) = self.image_box, self.natural_size
        return (
            round(box["x"] + point[0] * box["width"] / width),
            round(box["y"] + point[1] * box["height"] / height),
        )

    def image_point(self, screen: tuple[float, float]) -> Point:
        box, (width, height) = self.image_box, self.natural_size
        return (screen[0] - box["x"]) * width / box["width"], (screen[1] - box["y"]) * height / box["height"]

    # --- what a worker does ---
    def drag(self, start: Point, end: Point, steps: int = 12) -> tuple[Point, Point]:
        """Press at `start`, move to `end` and release: on a region it moves the region, on the bare image with a
        label chosen it draws one. Returns (start, end) as the mouse had them."""
        (x0, y0), (x1, y1) = self.screen_point(start), self.screen_point(end)
        self.page.mouse.move(x0, y0)
        self.page.mouse.down()
        self.page.mouse.move(x1, y1, steps=steps)
        self.page.mouse.up()
        return self.image_point((x0, y0)), self.image_point((x1, y1))

    def click(self, point: Point) -> None:
        self.page.mouse.click(*self.screen_point(point))

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)

    def choose_label(self, label: str) -> None:
        """Click the label's chip (with no region selected: the label of the boxes drawn next)."""
        chip = self.page.locator(".lsf-label").filter(
            has=self.page.locator(".lsf-label__text", has_text=re.compile(rf"^{re.escape(label)}$"))
        )
        chip.click()
        self.page.wait_for_function("el => el.className.includes('lsf-label_selected')", arg=chip.element_handle())

    # --- what the editor holds ---
    def result(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.page.evaluate(
            "() => window.Htx.annotationStore.selected.serializeAnnotation()"
        )
        return found

    def selected_region_ids(self) -> list[str]:
        found: list[str] = self.page.evaluate(
            "() => window.Htx.annotationStore.selected.selectedRegions.map(r => r.cleanId)"
        )
        return found

    def wait_for_regions(self, count: int) -> list[dict[str, Any]]:
        self.page.wait_for_function(
            "n => window.Htx?.annotationStore?.selected?.regions?.length === n"
            " && !window.Htx.annotationStore.selected.isDrawing",
            arg=count,
        )
        return self.result()

    def screenshot(self, name: str) -> None:
        if self.screenshot_dir is not None:
            self.page.screenshot(path=str(self.screenshot_dir / f"{name}.png"))

    def submit(self) -> dict[str, Any]:
        """The Submit button; returns the annotation as Label Studio saved it (its answer to the editor's POST)."""
        with self.page.expect_response(
            lambda response: response.request.method == "POST" and SAVED_ANNOTATION.search(response.url) is not None
        ) as saved:
            self.page.get_by_test_id("bottombar-submit-button").click()
        if not saved.value.ok:
            raise RuntimeError(f"Label Studio did not save the annotation: {saved.value.status} {saved.value.text()}")
        answer: dict[str, Any] = saved.value.json()
        return answer


@contextmanager
def labeling_editor(
    base_url: str, email: str, password: str, project_id: int, screenshot_dir: Path | None = None
) -> Iterator[LabelingEditor]:
    """Sign in, open the project's labeling stream and wait for its task's image (decoded) and the editor's store
    (with whatever annotation Label Studio opened: one made from the task's prediction when the project shows
    predictions), instructions closed."""
    with browser() as chromium:
        context = chromium.new_context(viewport=VIEWPORT)
        try:
            page = sign_in(context, base_url, email, password)
            page.goto(f"{base_url}/projects/{project_id}/data?labeling=1")
            page.locator(IMAGE).wait_for(state="visible")
            page.wait_for_function(
                "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0 }",
                arg=IMAGE,
            )
            page.wait_for_function("() => Boolean(window.Htx?.annotationStore?.selected)")
            close_instructions(page)
            yield LabelingEditor(page, screenshot_dir)
        finally:
            context.close()


# --- the projects list and the data manager, as a worker finds a project -------------------------------------------

PROJECT_CARD = "a.lsf-projects-page__link"
PROJECT_CARD_TITLE = ".lsf-project-card__title-text"
PROJECTS_LOADED = ".lsf-projects-page__content"
DATA_MANAGER = re.compile(r"/projects/(\d+)/data")


def project_titles(page: Page, base_url: str) -> list[str]:
    """The titles of the cards on the first page of the signed-in person's projects list (Label Studio's /projects
    page), once it has loaded (its content, cards or the empty page, is rendered only then); [] when it lists none."""
    page.goto(f"{base_url}/projects")
    page.locator(PROJECTS_LOADED).wait_for()
    return [title.strip() for title in page.locator(f"{PROJECT_CARD} {PROJECT_CARD_TITLE}").all_inner_texts()]


def open_project(page: Page, base_url: str, title: str) -> int:
    """Click the card titled exactly `title` on the projects list; returns the id of the project whose data
    manager (its task table) opened."""
    project_titles(page, base_url)
    card = page.locator(PROJECT_CARD).filter(
        has=page.locator(PROJECT_CARD_TITLE, has_text=re.compile(rf"^\s*{re.escape(title)}\s*$"))
    )
    card.click()
    page.wait_for_url(DATA_MANAGER)
    found = DATA_MANAGER.search(page.url)
    assert found is not None
    return int(found.group(1))


def wait_for_editor(page: Page) -> None:
    """The editor on a task: its image decoded (served through a presigned URL), its store with the annotation it
    opened, the project's instructions closed (what `labeling_editor` waits for)."""
    page.locator(IMAGE).wait_for(state="visible")
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0 }",
        arg=IMAGE,
    )
    page.wait_for_function("() => Boolean(window.Htx?.annotationStore?.selected)")
    close_instructions(page)


@contextmanager
def editor_from_project_list(
    base_url: str, email: str, password: str, project_title: str, screenshot_dir: Path | None = None
) -> Iterator[tuple[int, LabelingEditor]]:
    """What `labeling_editor` does, the way a person gets there: sign in, click the project's card on the projects
    list, then the data manager's "Label All Tasks" (the labeling stream). Yields the project's id and the
    editor. Whatever fails inside leaves a screenshot, failure.png, in `screenshot_dir`."""
    with browser() as chromium:
        context = chromium.new_context(viewport=VIEWPORT)
        page = sign_in(context, base_url, email, password)
        try:
            project_id = open_project(page, base_url, project_title)
            page.get_by_role("button", name="Label All Tasks").click()
            wait_for_editor(page)
            yield project_id, LabelingEditor(page, screenshot_dir)
        except Exception:
            if screenshot_dir is not None:
                page.screenshot(path=str(screenshot_dir / "failure.png"))
            raise
        finally:
            context.close()

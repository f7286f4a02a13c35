"""Browser check of the widgets: JupyterLab (headless, localhost) + headless Chromium driven by Playwright.

Not a pytest test (it needs a browser and is CPU-heavy): run it by hand after changing ``labhelpers/views/widgets.py``::

    apt-get install -y chromium chromium-driver     # Debian/Ubuntu: the browser this script drives
    .venv/bin/pip install playwright                # the Python driver only; no `playwright install` (it downloads)
    HF_HUB_OFFLINE=1 .venv/bin/python tests/browser_check.py [--out runs/browser_check] [--chromium /usr/bin/chromium]

It writes a notebook with the mask explorer and the schedule explorer into a temporary folder, starts JupyterLab there
(no token, 127.0.0.1 only, its own config/runtime/settings folders), opens the notebook in Chromium, runs all cells,
takes ``1_initial.png``, then through the page picks another masking mode, moves the row slider one step and picks
another scheduler, takes ``2_changed.png``, and asserts that the token view and the schedule image changed.
Exits non-zero, with the reason, if any step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 180_000  # kernel start + model tokenizer load on a busy 2-core CPU

CELLS = [
    """\
from labhelpers.model.loading import load_tokenizer
from labhelpers.views.widgets import mask_explorer, schedule_curve, schedule_explorer

tokenizer = load_tokenizer()
rows = [
    [{"role": "user", "content": "What is 2 + 2?"},
     {"role": "assistant", "content": "Answer: 4.\\n- two\\n- plus two\\n- is four\\nConfidence: high"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Answer: Blue.\\n- sky\\n- sea\\n- ink\\nConfidence: medium"}],
]


def everything(messages):
    ids = tokenizer.apply_chat_template(messages)["input_ids"]
    return ids, list(ids)


def assistant_only(messages):
    enc = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    return enc["input_ids"], [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"])]


mask_explorer(rows, tokenizer, {"default messages": everything, "assistant-only": assistant_only})""",
    """\
run_lrs = list(enumerate(schedule_curve("cosine", 1e-4, 0.1, 40), start=1))[::3]  # as if logged every 3 steps
schedule_explorer(run_lrs)""",
]


def write_notebook(folder: Path) -> Path:
    """The notebook the browser opens: the two explorers, no outputs."""
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {}, "outputs": [],
              "source": source} for i, source in enumerate(CELLS)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    path = folder / "widgets_check.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int, log: Path) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port serving ``folder``; no token, app exposed as ``window.jupyterapp``."""
    tracker = folder / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # render every cell, not only those in the viewport
    notification = folder / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))  # no "get notified about Jupyter news?" toast
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".ws"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={folder}", "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root; the server refuses without this
        cmd.append("--allow-root")
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group: stopped with its kernels at the end


def wait_for_lab(port: int, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"JupyterLab did not answer on port {port} within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server we started and its kernels (its own process group): SIGTERM, then SIGKILL after 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def check(out: Path, chromium: str) -> dict[str, str]:
    """Open the notebook, run it, drive the controls; return what changed. Raises AssertionError on a failure."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("1_initial.png", "2_changed.png", "failure.png", "failure.txt"):
        (out / stale).unlink(missing_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sft-lab-browser-check-"))
    write_notebook(folder)
    port, log = free_port(), out / "jupyterlab.log"
    lab = start_lab(folder, port, log)
    try:
        wait_for_lab(port, lab, log)
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(folder / "chromium-profile"),  # a fresh --user-data-dir
                executable_path=chromium, headless=True, args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 2000})
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/widgets_check.ipynb")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel")
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            try:
                before, after = drive(page, out)
            except Exception:
                page.screenshot(path=str(out / "failure.png"), full_page=True)  # what the page showed when it failed
                (out / "failure.txt").write_text(page.locator(".jp-Notebook").inner_text())
                raise
            browser.close()
        assert after["mask"] != before["mask"], "the mask view did not change"
        assert after["schedule"] != before["schedule"], "the schedule image did not change"
        title = lambda text: next(line for line in text.splitlines() if "tokens trained" in line)  # noqa: E731
        return {"mask before": title(before["mask"]), "mask after": title(after["mask"])}
    finally:
        stop(lab)
        shutil.rmtree(folder, ignore_errors=True)


def drive(page, out: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Wait for both explorers, screenshot, change a dropdown and the slider through the page, screenshot again."""
    mask_view = page.locator(".widget-html-content").filter(has_text="tokens trained").first
    mask_view.wait_for()
    schedule_img = page.locator(".jp-Notebook img").first
    schedule_img.wait_for(state="attached")
    time.sleep(1)  # let the layout settle before the screenshot
    before = {"mask": mask_view.inner_text(), "schedule": schedule_img.get_attribute("src") or ""}
    assert "row 0, default messages" in before["mask"], before["mask"][:200]
    page.screenshot(path=str(out / "1_initial.png"), full_page=True)

    selects = page.locator(".widget-dropdown select")
    selects.nth(0).select_option(label="assistant-only")  # mask explorer: masking mode
    page.get_by_text("row 0, assistant-only").wait_for()
    handle = page.locator(".widget-slider .noUi-handle").first  # mask explorer: row slider
    handle.focus()
    handle.press("ArrowRight")
    page.get_by_text("row 1, assistant-only").wait_for()
    selects.nth(1).select_option(label="linear")  # schedule explorer: scheduler type
    page.wait_for_function("(old) => { const img = document.querySelector('.jp-Notebook img');"
                           " return img && img.src !== old; }", arg=before["schedule"])
    time.sleep(1)
    after = {"mask": mask_view.inner_text(),
             "schedule": page.locator(".jp-Notebook img").first.get_attribute("src") or ""}
    page.screenshot(path=str(out / "2_changed.png"), full_page=True)
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/browser_check"), help="screenshots and the server log")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium", help="browser binary")
    cli = parser.parse_args()
    if not Path(cli.chromium).exists():
        raise SystemExit(f"no Chromium at {cli.chromium}; install it: apt-get install -y chromium chromium-driver")
    started = time.perf_counter()
    changed = check(cli.out, cli.chromium)
    print(f"browser check passed in {time.perf_counter() - started:.0f} s; screenshots in {cli.out}/")
    for key, value in changed.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()

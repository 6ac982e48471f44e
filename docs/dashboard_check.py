"""``skft dashboard`` in a real browser: a small search's trials appear on the page.

Usage: ``python docs/dashboard_check.py [--screenshot docs/dashboard.png]``. It runs a
small :class:`skft.OptunaSearch` (tiny CNN on 60 digits, 6 trials) into a SQLite storage
in a temporary folder, starts ``skft dashboard`` on it on 127.0.0.1, loads the study's
page in headless Chromium (Debian's ``chromium``; ``SKFT_CHROMIUM`` names another binary)
and checks that the study and every trial are on the rendered page. Then it writes one
more trial while the dashboard runs, and times how long after the write a freshly loaded
page shows it. With ``--screenshot``, the page as the browser drew it is saved there.
Exit status 0: every trial shown; 1: not; 2: no Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from check_site import find_chromium  # noqa: E402  (the docs check's: same lookup)

STUDY = "digits-smallcnn"
#: A trial written must show on a page left open within this many seconds (the issue's goal).
LIVE_GOAL = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_search(storage: str, n_trials: int = 6, study_name: str = STUDY):
    """A tiny CNN on 60 digits, tuned in ``storage`` until its study holds ``n_trials``
    finished trials (a few seconds per trial on 2 cores)."""
    import optuna

    from skft import FineTunedClassifier, OptunaSearch
    from skft.data.datasets import load_digits_images

    X, y = load_digits_images(n_class=3)
    clf = FineTunedClassifier(
        "smallcnn", pretrained=False, image_size=16, max_epochs=3, batch_size=16, verbose=0,
        random_state=0,
    )  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = OptunaSearch(
        clf, n_trials=n_trials, cv=2, storage=storage, study_name=study_name, random_state=0
    )
    return search.fit(X[:60], y[:60])


class Dashboard:
    """``skft dashboard STORAGE`` in a child process, on a free port of 127.0.0.1."""

    def __init__(self, storage: str, timeout: float = 60.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "skft.cli.main", "dashboard", storage]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"skft dashboard exited: {self.process.stdout.read()}")
            try:
                self.studies()
                return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise RuntimeError(f"skft dashboard did not answer on {self.url} in {timeout} s")

    def studies(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/studies", timeout=5) as answer:
            return json.load(answer)["study_summaries"]

    def page(self, study_name: str = STUDY) -> str:
        (study_id,) = [s["study_id"] for s in self.studies() if s["study_name"] == study_name]
        return f"{self.url}/dashboard/studies/{study_id}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _chromium(chromium: str, profile: str, *args: str) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",  # Chromium refuses to run as root with its sandbox
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",  # the page's scripts fetch the study and draw plots
        "--window-size=1280,1000",
        *args,
    ]


def page_text(chromium: str, url: str, timeout: float = 90.0) -> str:
    """The visible text of ``url`` after its scripts ran (tags, styles and scripts removed)."""
    with tempfile.TemporaryDirectory(prefix="skft-dashboard-check-") as tmp:
        done = subprocess.run(
            _chromium(chromium, f"{tmp}/profile", "--dump-dom", url),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", done.stdout, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def screenshot(chromium: str, url: str, path: Path, timeout: float = 90.0) -> None:
    with tempfile.TemporaryDirectory(prefix="skft-dashboard-shot-") as tmp:
        subprocess.run(
            _chromium(chromium, f"{tmp}/profile", f"--screenshot={Path(path).resolve()}", url),
            capture_output=True,
            timeout=timeout,
            check=True,
        )


class OpenPage:
    """A page left open in headless Chromium, read through the DevTools protocol.

    Chromium's ``--remote-debugging-port=0`` picks a port and writes it into the profile's
    ``DevToolsActivePort``; the page's target answers ``Runtime.evaluate`` over a websocket
    (Tornado's client, which Dask brings).
    """

    def __init__(self, chromium: str, url: str, timeout: float = 60.0) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="skft-dashboard-live-")
        profile = Path(self._tmp.name) / "profile"
        args = _chromium(chromium, str(profile), "--remote-debugging-port=0", url)
        args.remove("--virtual-time-budget=10000")  # the page runs on the real clock here
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        port_file = profile / "DevToolsActivePort"
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium's DevTools listed no page")
            time.sleep(0.1)
        self._socket_url = pages[0]["webSocketDebuggerUrl"]
        self._loop = asyncio.new_event_loop()
        self._socket = self._loop.run_until_complete(self._connect())
        self._id = 0

    async def _connect(self):
        from tornado.websocket import websocket_connect

        return await websocket_connect(self._socket_url, max_message_size=1 << 26)

    def text(self) -> str:
        """The page's visible text now (``document.body.innerText``)."""
        self._id += 1
        message = {
            "id": self._id,
            "method": "Runtime.evaluate",
            "params": {"expression": "document.body ? document.body.innerText : ''"},
        }

        async def ask():
            await self._socket.write_message(json.dumps(message))
            while True:
                answer = json.loads(await self._socket.read_message())
                if answer.get("id") == self._id:
                    return answer["result"]["result"].get("value", "")

        return self._loop.run_until_complete(ask())

    def wait_for(self, wanted: str, timeout: float, every: float = 0.1) -> float | None:
        """Seconds until the words ``wanted`` are in the page's text (``None``: not within
        ``timeout``); "Trial 1" is not found in "Trial 12"."""
        pattern = re.compile(rf"(?<!\w){re.escape(wanted)}(?!\w)")
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if pattern.search(self.text()):
                return time.monotonic() - t0
            time.sleep(every)
        return None

    def close(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
            self._loop.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._tmp.cleanup()

    def __enter__(self) -> OpenPage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_trial(storage: str, study_name: str = STUDY) -> tuple[int, float]:
    """Write one finished trial into the study, as a running search does: ``(number, the
    monotonic clock when the write returned)``."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    done = study.trials[-1]
    study.add_trial(
        optuna.trial.create_trial(
            params=done.params, distributions=done.distributions, value=done.value
        )
    )
    return len(study.trials) - 1, time.monotonic()


def live_delay(chromium: str, dashboard: Dashboard, storage: str, timeout: float = 30.0):
    """How long after a trial is written an *open* trial-list page shows it: ``(number,
    seconds or None)``. The page is loaded first and left open; no reload."""
    import optuna

    url = dashboard.page() + "/trials"
    with OpenPage(chromium, url) as page:
        before = len(optuna.load_study(study_name=STUDY, storage=storage).trials)
        if page.wait_for(f"Trial {before - 1}", timeout) is None:
            raise RuntimeError(f"{url} never showed trial {before - 1}")
        number, written = add_trial(storage)
        seen = page.wait_for(f"Trial {number}", timeout, every=0.05)
        return number, (None if seen is None else time.monotonic() - written)


def missing_trials(text: str, n_trials: int, study_name: str = STUDY) -> list[str]:
    """What the page text lacks: the study's name and each trial's entry in the plots' legend
    ("trial #0", ...)."""
    wanted = [study_name] + [f"trial #{i}" for i in range(n_trials)]
    return [w for w in wanted if w not in text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, default=None, help="save the page as PNG")
    parser.add_argument("--trials", type=int, default=6, help="trials of the small search")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("dashboard check: no Chromium (apt-get install chromium, or set SKFT_CHROMIUM)")
        return 2
    with tempfile.TemporaryDirectory(prefix="skft-dashboard-") as tmp:
        storage = f"sqlite:///{tmp}/study.db"
        t0 = time.perf_counter()
        small_search(storage, args.trials)
        print(f"dashboard check: {args.trials} trials in {time.perf_counter() - t0:.1f} s")
        with Dashboard(storage) as dashboard:
            url = dashboard.page()
            missing = missing_trials(page_text(chromium, url), args.trials)
            print(f"dashboard check: {url}: missing {missing or 'nothing'}")
            search = small_search(storage, args.trials + 1)  # one more, into its study
            shown = not missing_trials(page_text(chromium, url), args.trials + 1)
            last = search.study_.trials[-1]
            end = last.datetime_complete or datetime.datetime.now()
            print(
                f"dashboard check: trial #{last.number} shown by a page loaded after it was "
                f"written: {shown}, {(datetime.datetime.now() - end).total_seconds():.1f} s "
                "after it was written (the search's refit, Chromium's start and the page's "
                "load included)"
            )
            number, delay = live_delay(chromium, dashboard, storage)
            live = delay is not None and delay <= LIVE_GOAL
            print(
                f"dashboard check: trial #{number} shown by the open trial list "
                + (f"{delay:.1f} s after it was written" if delay is not None else "never")
                + f" (no reload; goal {LIVE_GOAL:g} s)"
            )
            if args.screenshot is not None:
                screenshot(chromium, url, args.screenshot)
                print(f"dashboard check: wrote {args.screenshot}")
    return 0 if not missing and shown and live else 1


if __name__ == "__main__":
    sys.exit(main())

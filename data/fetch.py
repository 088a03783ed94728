"""Fetching benchmark videos: yt-dlp for videos, httpx for archives, ffmpeg for remuxing and cuts.

One download attempt either returns a file or raises ``FetchError`` with a reason and two flags:
``retry`` (a transient failure: network error, timeout, HTTP 5xx/429, a truncated transfer or an
undecodable file) and ``unavailable`` (the source says the video is gone: HTTP 404/410, a private
or removed YouTube video; retrying cannot help, the manifest calls it *skipped*). ``with_retries``
repeats transient failures with exponential back-off and jitter (tenacity).

* **Videos** go through yt-dlp used as a library (``yt_dlp.YoutubeDL``): YouTube ids, any page its
  extractors understand (the generic extractor finds ``<video>`` tags) and direct file links.
  yt-dlp's own HTTP retries are off (``retries=0``) so that back-off is ours; its ``.part`` files
  are resumed by the next attempt. ``timeout`` is the socket timeout (a server that stops
  sending); ``max_time`` bounds one attempt's wall clock (a server that trickles), enforced in a
  progress hook that also honours a stop event (Ctrl-C). Cookies, proxy and a per-download byte
  rate are handed to yt-dlp unchanged.
* **Archives** (Charades, the QVHighlights clip tarball) are streamed with httpx into ``.part``
  (resumed with an HTTP Range request), then checked against a sha256 before anything is unpacked.
* **RateLimiter** spaces the start of requests across all worker threads (YouTube throttles
  clients that open many requests per minute, whatever their bandwidth).
* **ffmpeg** is imageio-ffmpeg's binary: ``cut`` re-encodes (libx264) so a window starts at its
  exact time, ``remux`` changes the container without re-encoding (mp4 output for webm sources).

Nothing here knows about benchmarks or manifests (``data/download_jobs.py`` and
``datasets/download.py`` do).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

log = logging.getLogger("data.fetch")
T = TypeVar("T")

# Video-only streams are enough for the model (it reads frames) and need no merging; H.264 is
# preferred because every decoder here reads it fast; 480p is the resolution Charades ships.
DEFAULT_FORMAT = "bv*[height<=?480][vcodec^=avc1]/bv*[height<=?480]/bv*/b"


class FetchError(Exception):
    """A failed attempt. ``retry``: worth another attempt; ``unavailable``: gone at the source."""

    def __init__(self, reason: str, *, retry: bool = True, unavailable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry and not unavailable
        self.unavailable = unavailable


@dataclass
class FetchSettings:
    timeout: float = 30.0                 # socket timeout, seconds
    max_time: float | None = 3600.0       # wall clock of one attempt, seconds (None: no limit)
    retries: int = 3                      # further attempts after a transient failure
    backoff: float = 5.0                  # first back-off, seconds; doubles per retry
    backoff_max: float = 300.0
    rate_per_min: float | None = None     # request starts per minute, all workers together
    limit_rate: str | None = None         # bytes/s per download, yt-dlp syntax ("2M", "500K")
    cookies: str | None = None            # Netscape cookies.txt
    cookies_from_browser: str | None = None
    proxy: str | None = None
    format: str = DEFAULT_FORMAT
    ffmpeg: str | None = None             # default: imageio-ffmpeg's binary

    def __post_init__(self) -> None:
        if self.timeout <= 0 or (self.max_time is not None and self.max_time <= 0):
            raise ValueError(f"timeout and max_time must be positive, got {self.timeout}, {self.max_time}")
        if self.retries < 0 or self.backoff < 0 or self.backoff_max < 0:
            raise ValueError("retries, backoff and backoff_max must be >= 0")
        if self.rate_per_min is not None and self.rate_per_min <= 0:
            raise ValueError(f"rate_per_min must be positive, got {self.rate_per_min}")

    def for_record(self) -> dict[str, Any]:
        """The settings worth recording in a manifest: the cookies' path (never their content) and
        the proxy without its credentials."""
        rec = {k: v for k, v in vars(self).items() if k != "ffmpeg"}
        if self.proxy:
            rec["proxy"] = redact(self.proxy)
        return rec


# query parameters that carry credentials: tokens, API keys, signed-URL signatures (S3, GCS, Azure)
_SECRET_PARAM = re.compile(r"([?&;](?:[\w.-]*(?:token|key|secret|passw(?:or)?d|pwd|sig|signature|auth|"
                           r"credential|session)[\w.-]*|x-amz-[\w-]+|x-goog-[\w-]+|sv|se|sp)=)[^&#\s'\"]*",
                           re.IGNORECASE)


def redact(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://***@host`` and ``?token=abc`` -> ``?token=***``
    (URLs, proxies, command lines, error messages that quote them)."""
    return _SECRET_PARAM.sub(r"\1***", re.sub(r"//[^/@\s]*@", "//***@", text))


# ---------------------------------------------------------------------------- rate and retries

class RateLimiter:
    """At most ``per_minute`` request starts per minute across threads, evenly spaced: each start
    takes the next free slot ``interval = 60 / per_minute`` after the previous one. After an idle
    period the next start is immediate and the following ones are spaced again (no saved-up burst)."""

    def __init__(self, per_minute: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = None
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self, stop: threading.Event | None = None) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = now if self._next is None else max(now, self._next)
            self._next = start + self.interval
        while True:
            wait = start - self._clock()
            if wait <= 0:
                return
            if stop is not None and stop.is_set():
                raise FetchError("stopped", retry=False)
            self._sleep(min(wait, 0.5))


def with_retries(attempt: Callable[[int], T], settings: FetchSettings,
                 on_retry: Callable[[int, FetchError, float], None] | None = None,
                 sleep: Callable[[float], None] | None = None, stop: threading.Event | None = None) -> tuple[T, int]:
    """``attempt(n)`` for n = 1, 2, ... until it returns or fails for good; returns (result, attempts).

    Only ``FetchError`` with ``retry`` set is repeated, at most ``settings.retries`` times, after
    ``backoff * 2**(n-1)`` seconds (capped at ``backoff_max``, plus up to ``backoff`` of jitter so
    that workers do not retry in lock-step). A set ``stop`` event ends the back-off at once and
    retries no more. The last error is re-raised with ``attempts`` set on it.
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

    if sleep is None:
        sleep = stop.wait if stop is not None else time.sleep
    retrying = Retrying(
        stop=stop_after_attempt(settings.retries + 1),
        wait=wait_exponential_jitter(initial=settings.backoff, max=settings.backoff_max, jitter=settings.backoff),
        retry=retry_if_exception(lambda e: isinstance(e, FetchError) and e.retry
                                 and not (stop is not None and stop.is_set())),
        before_sleep=(lambda rs: on_retry(rs.attempt_number, rs.outcome.exception(), rs.next_action.sleep))
        if on_retry else None,
        sleep=sleep,
        reraise=True,
    )
    n = 0
    try:
        for state in retrying:
            with state:
                n = state.retry_state.attempt_number
                result = attempt(n)
        return result, n
    except FetchError as e:
        e.attempts = n  # type: ignore[attr-defined]
        raise


# ------------------------------------------------------------------------------------- videos

# (substring of yt-dlp's message, lower case) -> (reason, unavailable). First match wins. "Sign in
# to confirm you're not a bot" is YouTube throttling this client (transient); "sign in to confirm
# your age" needs an account (not retried).
_YTDLP_PATTERNS: tuple[tuple[str, str, bool], ...] = (
    ("not a bot", "YouTube asks to confirm you are not a bot (throttled: lower --rate_per_min, pass --cookies)", False),
    ("http error 404", "not found at the source (HTTP 404)", True),
    ("http error 410", "gone at the source (HTTP 410)", True),
    ("private video", "private video", True),
    ("video unavailable", "video unavailable", True),
    ("has been removed", "video removed", True),
    ("been terminated", "uploader account terminated", True),
    ("no longer available", "video no longer available", True),
    ("copyright", "blocked on copyright grounds", True),
    ("not available in your country", "geo-blocked here (try --proxy)", True),
    ("confirm your age", "age-restricted (pass --cookies of a signed-in account)", True),
    ("members-only", "members-only video", True),
    ("join this channel", "members-only video", True),
    ("unsupported url", "no video found at this URL (unsupported)", True),
    ("timed out", "timed out", False),
    ("bytes read", "truncated transfer", False),
    ("http error 429", "rate limited by the server (HTTP 429)", False),
)


def classify_download_error(message: str, status: int | None = None) -> FetchError:
    """A yt-dlp error message (and the HTTP status behind it, when known) as a FetchError."""
    text = " ".join(message.replace("\r", " ").split())
    if text.startswith("ERROR: "):
        text = text[len("ERROR: "):]
    if status in (404, 410):
        return FetchError(f"{'not found' if status == 404 else 'gone'} at the source (HTTP {status}): {text}",
                          unavailable=True)
    low = text.lower()
    for needle, reason, unavailable in _YTDLP_PATTERNS:
        if needle in low:
            return FetchError(f"{reason}: {text}", unavailable=unavailable)
    return FetchError(text)


class _YtdlpLogger:
    """yt-dlp prints errors to stderr even when quiet; keep them for the reason instead."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    info = debug

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)


def ffmpeg_exe(settings: FetchSettings | None = None) -> str:
    if settings is not None and settings.ffmpeg:
        return settings.ffmpeg
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def ytdlp_options(settings: FetchSettings, stage: Path, hook: Callable[[dict], None]) -> dict[str, Any]:
    """The YoutubeDL parameters of one download into ``stage`` (a folder of its own)."""
    import yt_dlp

    opts: dict[str, Any] = {
        "outtmpl": str(stage / "source.%(ext)s"),
        "format": settings.format,
        "noplaylist": True,
        "quiet": True, "no_warnings": True, "noprogress": True,
        "socket_timeout": settings.timeout,
        "retries": 0,             # back-off is ours (with_retries); .part files are resumed
        "fragment_retries": 3,    # a lost DASH fragment is re-fetched in place
        "continuedl": True,
        "cachedir": False,        # nothing written to ~/.cache
        "ffmpeg_location": ffmpeg_exe(settings),
        "progress_hooks": [hook],
        # Ctrl-C and max_time are checked between reads, so a read must stay short on a slow link.
        # yt-dlp's adaptive buffer grows (up to 4 MiB) whenever reads return at once from the socket
        # buffer (after a burst, or a stall of this thread under load); one read of it then blocks
        # for as long as that many bytes take. 16 KiB: 3 s at 5 KB/s, a trifle of overhead at MB/s.
        "buffersize": 16 * 1024,
        "noresizebuffer": True,
    }
    if settings.limit_rate:
        opts["ratelimit"] = yt_dlp.parse_bytes(settings.limit_rate)
        if opts["ratelimit"] is None:
            raise ValueError(f"limit_rate {settings.limit_rate!r} is not a byte rate like 2M or 500K")
    if settings.cookies:
        opts["cookiefile"] = settings.cookies
    if settings.cookies_from_browser:
        opts["cookiesfrombrowser"] = (settings.cookies_from_browser,)
    if settings.proxy:
        opts["proxy"] = settings.proxy
    return opts


def fetch_video(url: str, stage: Path, settings: FetchSettings, stop: threading.Event | None = None,
                ) -> tuple[Path, dict[str, Any]]:
    """Download ``url`` into the folder ``stage``; returns (file, info: id, title, extractor, ext, url).

    One attempt: raises FetchError (classified) on any failure.
    """
    import yt_dlp

    stage.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + settings.max_time if settings.max_time else None

    class Cancelled(yt_dlp.utils.DownloadCancelled):  # propagates out of extract_info unwrapped
        pass

    def hook(progress: dict) -> None:
        if stop is not None and stop.is_set():
            raise Cancelled("stopped")
        if deadline is not None and time.monotonic() > deadline:
            raise Cancelled(f"timed out: download took longer than max_time {settings.max_time:g} s")

    logger = _YtdlpLogger()
    opts = ytdlp_options(settings, stage, hook)
    opts["logger"] = logger
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
    except Cancelled as e:
        raise FetchError(str(e), retry=str(e) != "stopped") from None
    except yt_dlp.utils.DownloadError as e:
        cause = e.exc_info[1] if getattr(e, "exc_info", None) else None
        status = getattr(cause, "status", None)
        raise classify_download_error(str(e) or "; ".join(logger.errors), status) from None
    except yt_dlp.utils.YoutubeDLError as e:
        raise classify_download_error(str(e)) from None
    if info is None:
        raise FetchError("yt-dlp returned no video: " + "; ".join(logger.errors))
    if info.get("_type") == "playlist" or info.get("entries") is not None:
        raise FetchError("the URL is a playlist, not one video", retry=False)
    files = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    files = [f for f in files if f.is_file()]
    if not files:
        raise FetchError("yt-dlp reported success but wrote no file")
    keep = ("id", "title", "extractor", "ext", "webpage_url", "duration", "width", "height", "vcodec", "format_id")
    return files[0], {k: info.get(k) for k in keep}


# ------------------------------------------------------------------------------------ archives

def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def _httpx_client(settings: FetchSettings):
    import httpx

    kwargs: dict[str, Any] = {"timeout": httpx.Timeout(settings.timeout), "follow_redirects": True}
    if settings.proxy:
        kwargs["proxy"] = settings.proxy
    if settings.cookies:
        from http.cookiejar import MozillaCookieJar

        jar = MozillaCookieJar(settings.cookies)
        jar.load(ignore_discard=True, ignore_expires=True)
        kwargs["cookies"] = jar
    return httpx.Client(**kwargs)


def fetch_file(url: str, dest: Path, settings: FetchSettings, stop: threading.Event | None = None) -> Path:
    """One attempt to download ``url`` to ``dest`` through ``dest.part`` (resumed with Range).

    The ``.part`` is renamed only when the byte count matches the server's Content-Length.
    """
    import httpx

    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    deadline = time.monotonic() + settings.max_time if settings.max_time else None
    try:
        with _httpx_client(settings) as client, client.stream("GET", url, headers=headers) as r:
            if r.status_code in (404, 410):
                raise FetchError(f"not found at the source (HTTP {r.status_code}): {url}", unavailable=True)
            if r.status_code == 416 and have:
                # nothing after byte `have`: a run killed between the last byte and the rename left the
                # whole file (RFC 9110: "Content-Range: bytes */LENGTH" says so); a longer part is stale
                m = re.fullmatch(r"bytes \*/(\d+)", r.headers.get("Content-Range", "").strip())
                if m and int(m.group(1)) == have:
                    os.replace(part, dest)
                    return dest
                part.unlink()
                raise FetchError("stale partial download discarded (HTTP 416)")
            if r.status_code >= 400:
                raise FetchError(f"HTTP {r.status_code} for {url}", retry=r.status_code >= 500 or r.status_code == 429)
            resumed = r.status_code == 206
            expected = r.headers.get("Content-Length")
            total = (int(expected) + (have if resumed else 0)) if expected is not None else None
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True, desc=dest.name,
                       disable=not sys.stderr.isatty())  # a 13-GB archive takes a while; logs stay clean
            with open(part, "ab" if resumed else "wb") as f, bar:
                for chunk in r.iter_bytes():  # as it arrives: a broken transfer keeps every byte received
                    f.write(chunk)
                    bar.update(len(chunk))
                    if stop is not None and stop.is_set():
                        raise FetchError("stopped", retry=False)
                    if deadline is not None and time.monotonic() > deadline:
                        raise FetchError(f"timed out: download took longer than max_time {settings.max_time:g} s")
    except httpx.TimeoutException as e:
        raise FetchError(f"timed out: {type(e).__name__} {e}") from None
    except httpx.HTTPError as e:
        raise FetchError(f"network error: {type(e).__name__} {e}") from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise FetchError(f"truncated transfer: {size} of {total} bytes")
    os.replace(part, dest)
    return dest


def check_sha256(path: Path, expected: str) -> str:
    """sha256 of ``path``; raises FetchError (no retry) when it differs from ``expected``."""
    actual = sha256_of(path)
    if actual.lower() != expected.lower():
        raise FetchError(f"sha256 mismatch for {path.name}: expected {expected.lower()}, got {actual}", retry=False)
    return actual


def extract_by_basename(path: Path, wanted: dict[str, Path]) -> dict[str, str]:
    """Copy every archive member whose base name is a key of ``wanted`` to ``wanted[base]``.

    One sequential pass (a .tar.gz has no index: random access would decompress it again per
    member). Returns {base name: member name} of what was found. Only base names are matched
    and outputs go to the caller's paths, so a member named ``../../x`` cannot escape. A zip
    member whose CRC does not match raises ``zipfile.BadZipFile``.
    """
    import shutil
    import tarfile
    import zipfile

    def base(name: str) -> str:
        return name.replace("\\", "/").rsplit("/", 1)[-1]

    found: dict[str, str] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                b = base(info.filename)
                if info.is_dir() or b not in wanted or b in found:
                    continue
                wanted[b].parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(wanted[b], "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                found[b] = info.filename
        return found
    try:
        stream = tarfile.open(path, mode="r|*")
    except tarfile.TarError:
        raise FetchError(f"{path.name} is neither a zip nor a tar archive", retry=False) from None
    with stream:
        for member in stream:
            b = base(member.name)
            if not member.isfile() or b not in wanted or b in found:
                continue
            src = stream.extractfile(member)
            wanted[b].parent.mkdir(parents=True, exist_ok=True)
            with src, open(wanted[b], "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(src, out, 1 << 20)
            found[b] = member.name
    return found


# -------------------------------------------------------------------------------------- ffmpeg

def _run_ffmpeg(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise FetchError(f"ffmpeg {what} failed: {tail}", retry=False)


CUT_SEEK_MARGIN = 10.0  # seconds decoded before a window's start (see ``cut_command``)


def cut_command(ffmpeg: str, src: str | Path, dest: str | Path, start: float, end: float, crf: int = 18,
                preset: str = "veryfast", fmt: str | None = None) -> list[str]:
    """The ffmpeg command that re-encodes the frames of ``src`` shown in ``[start, end)`` (seconds
    from the source's start) to ``dest`` (container ``fmt``, default from its name), whose time 0
    is its first frame.

    An input -ss alone trusts the demuxer's seek: exact for MP4/WebM, but an MPEG-TS seek can land
    after the key frame it needs, and the frames up to the next one are lost (a [4, 10) window of a
    .ts source began at frame 44 of 10 fps, 0.4 s late). -t, as an input or an output option, counts
    from the first frame kept, not from ``start``: [1.06, 2.0) at 10 fps kept the frame at 2.0. So
    the input seek stops CUT_SEEK_MARGIN seconds short and ``trim``/``atrim`` keep the decoded
    frames and samples whose timestamps lie in [start, end); ffmpeg stops reading once they end.
    """
    if not end > start >= 0:
        raise ValueError(f"bad window [{start}, {end})")
    pre = max(0.0, start - CUT_SEEK_MARGIN)
    a, b = f"{start - pre:.6f}", f"{end - pre:.6f}"
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{pre:.6f}", "-i", str(src),
            "-map", "0:v:0", "-map", "0:a?",
            "-vf", f"trim=start={a}:end={b},setpts=PTS-STARTPTS",
            "-af", f"atrim=start={a}:end={b},asetpts=PTS-STARTPTS",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-movflags", "+faststart", *(["-f", fmt] if fmt else []), str(dest)]


def cut(src: Path, dest: Path, start: float, end: float, settings: FetchSettings | None = None, crf: int = 18) -> Path:
    """Re-encode ``[start, end)`` of ``src`` (time 0 of ``dest`` = ``start``); frame-accurate."""
    if not end > start >= 0:
        raise ValueError(f"bad window [{start}, {end})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run_ffmpeg(cut_command(ffmpeg_exe(settings), src, dest, start, end, crf),
                f"cut [{start}, {end}) of {src.name}")
    return dest


def remux(src: Path, dest: Path, settings: FetchSettings | None = None) -> Path:
    """Change the container to ``dest``'s (streams copied); re-encode if they do not fit it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    base = [ffmpeg_exe(settings), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
            "-map", "0:v:0", "-map", "0:a?"]
    fast = ["-movflags", "+faststart"] if dest.suffix.lower() in (".mp4", ".m4v", ".mov") else []
    try:
        _run_ffmpeg(base + ["-c", "copy", *fast, str(dest)], f"remux of {src.name}")
    except FetchError:
        _run_ffmpeg(base + ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                            "-c:a", "aac", *fast, str(dest)], f"transcode of {src.name}")
    return dest

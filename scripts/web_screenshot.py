"""Screenshot of a finished web-demo run, for the README (instructions/web_demo.png).

    python scripts/web_screenshot.py [--out instructions/web_demo.png] [--width 1000]

Starts the web demo in this process on the embedded default model, opens it in headless Chromium
(Debian's chromium + chromium-driver: bash scripts/install_browser.sh), uploads the synthetic demo
video with its query, waits for the end of the stream, seeks to the last highlight segment, and
saves the page, downscaled and palette-quantised so the PNG stays small.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "instructions" / "web_demo.png"))
    ap.add_argument("--width", type=int, default=1000, help="width of the saved PNG in pixels")
    ap.add_argument("--colors", type=int, default=96, help="palette size of the saved PNG")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from PIL import Image

    from test import demo, web_demo
    from test.engine_args import load_model
    from tests.browser import DemoPage, chrome

    with tempfile.TemporaryDirectory(prefix="aha-web-shot-") as tmp:
        tmp = Path(tmp)
        flags = demo.build_parser().parse_args(["--quiet", "--output_dir", str(tmp / "runs")])
        demo.resolve_model(flags)
        loaded = load_model(flags)
        video, query, _ = demo.generated_video(flags, tmp / "example")
        page_app, _ = web_demo.build_app(flags, loaded, tmp / "runs", example=(str(video), query))
        url = web_demo.launch(page_app, tmp / "runs", block=False, extra_paths=[tmp / "example"])
        driver = chrome(width=1400, height=1900)
        try:
            page = DemoPage(driver, url, tmp)
            page.upload(video)
            page.set_queries(query)
            page.run()
            final = page.wait_until_finished(900)
            if final["state"] != "done" or page.errors():
                raise SystemExit(f"the run did not finish cleanly: {final}, {page.errors()}")
            segments = driver.find_elements("css selector", "#aha-highlights .aha-segment")
            if segments:  # show the video at a highlight
                segments[-1].click()
                page.wait(lambda: (p := page.player()) is not None and p["ready"] >= 2, 30, "the player")
                driver.execute_script("const v = document.querySelector('#aha-player video'); v && v.pause();")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(int(height) + 40, 4000))
            shot = tmp / "page.png"
            driver.save_screenshot(str(shot))
        finally:
            driver.quit()
            page_app.close()
        img = Image.open(shot).convert("RGB")
        w, h = img.size
        img = img.resize((args.width, round(h * args.width / w)), Image.LANCZOS)
        img = img.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB, {img.size[0]}x{img.size[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One module per benchmark: raw annotations -> items, gold loading and validation, the stream
adapter, and a pure in-memory scorer.

Every module (``tvsum``, ``hisum``, ``charades``, ``qvh``, ``youcook2``, ``magqa``) offers the same
functions, so drivers and the command-line faces (``datasets/convert.py``, ``test/evaluate.py``,
``test/benchmark.py``) never special-case a benchmark:

* ``PROTOCOLS`` (name -> option defaults), ``DEFAULT_PROTOCOL``, ``resolve(protocol, options)``
  (unknown protocols and options refused), ``tunable(protocol, opts)``, ``headline(metrics, protocol)``;
* ``load_gold(path, protocol, opts)`` -> {item id: gold item}, formats told apart by content,
  every number / span / id checked (``validate``);
* ``record_id(rec)``, ``from_record(rec, gold_item, protocol, opts)`` (official prediction formats)
  and ``from_stream(stream, gold_item, protocol, opts)``: ``stream`` is a
  ``test.postprocess.ProcessedStream`` (duck-typed here: the benchmark asks it for the fused score,
  an interval, ranked windows; fusion, smoothing, peaks and segments stay in the post-processor);
  optionally ``from_document(data)`` for whole-file formats, ``tuning_options(protocol, opts)`` and
  ``item_group(gold_item)`` (the video of a query: k-fold tuning keeps a video's queries in one fold);
* ``score(predictions, gold, protocol, options) -> {"metrics", "per_item", "record"}``: a pure
  function of in-memory predictions, the same one for reporting and for tuning;
* ``convert(...)``: raw annotation files -> streaming benchmark items (``items``).

The synthetic generator (``data/synthetic``) writes its raw files with these modules' helpers.
"""
from __future__ import annotations

import importlib
from types import ModuleType

# benchmark name (also test.benchmark --dataset) -> module
MODULES = {
    "tvsum": "data.benchmarks.tvsum",
    "tvsum_degraded": "data.benchmarks.tvsum",  # TVSum streamed with degraded frames: scored as TVSum
    "hisum": "data.benchmarks.hisum",
    "charades": "data.benchmarks.charades",
    "qvh": "data.benchmarks.qvh",
    "youcook2": "data.benchmarks.youcook2",
    "magqa": "data.benchmarks.magqa",
}
# older names (test.evaluate --func) -> benchmark
ALIASES = {"grounding": "charades", "dense_captioning": "youcook2", "mr_hisum": "hisum", "qvhighlights": "qvh"}
NAMES = tuple(MODULES)


def get(name: str) -> ModuleType:
    """The module of a benchmark (or alias); a clear error for an unknown name."""
    key = ALIASES.get(name, name)
    if key not in MODULES:
        raise ValueError(f"unknown benchmark {name!r}; choose from {sorted(MODULES)} (aliases {sorted(ALIASES)})")
    return importlib.import_module(MODULES[key])

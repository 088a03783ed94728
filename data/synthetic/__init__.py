"""Deterministic synthetic video benchmark: moving shapes, a query, and every annotation format.

No pretrained vision weights exist offline, so the embedded default model is trained on data
whose ground truth is known exactly. Each video shows a calm, slowly drifting background with a
few static "clutter" shapes; at random times an **event** happens: a shape of some *kind*
(circle, square, triangle) and *colour* appears and performs a *motion* (bounces, slides, spins,
grows), then disappears. The video's **query** names one kind + colour + motion ("a red circle
bounces"). Some events match the query; the others are **distractors** that move just as much but
differ in colour, kind, motion or all of them, so motion energy alone cannot find the query
events. Two adjacent events never look the same (dense-captioning loaders drop a caption equal to
the previous one).

Ground truth, all derived from the events:

* importance of time t for the query: ``max_e level_e * w_e(t)`` with level 1 for a matching
  event, ``DISTRACTOR_LEVEL`` for a distractor (a moving object is mildly interesting), 0 when
  calm, and ``w_e`` a window with smoothstep edges ``EDGE_S`` wide on each side of the event's
  boundaries (exactly 0 farther away); per second it is the mean over the native frames of that
  second;
* TVSum: ``n_annotators`` noisy annotators score 2-s clips 1-5 (own lag, gain, bias and noise),
  repeated per native frame (``ydata-tvsum50-anno.tsv``), with an info tsv (title = query,
  category code = ``MOTION_CATEGORY[motion]``) and the UMT per-clip ``tvsum_anno.json``;
* grounding: ``grounding.json`` (training list, every matching span) and Charades-STA
  ``vid start end##query`` lines plus the ``id,length`` csv. A Charades line holds one span, so only
  videos whose query matches exactly one event get a line (a repeated line would make one run
  answer two items);
* dense captioning: one caption per event, as ActivityNet captions (``yc2_<split>.json``) and as
  the Shot2Story DVC training file; each caption is "said" between the event's midpoint and
  three quarters of it (the informative labels run from the midpoint to that time);
* MAGQA: one question per video about one attribute of the query ("What are the red shapes
  doing?"), asked before the first matching event, answered by every later event with that
  attribute (training conversation list and test items);
* HIHD: per-second replay-style scores (importance + slow interest + noise, min-max normalised)
  with a quality-dropout schedule from ``data.degrade.make_schedule``, one CSV for all splits;
* QVHighlights: ``highlight_<split>_release.jsonl`` (relevant windows = the matching events, 3
  annotators' 0-4 saliency of the 2-s clips overlapping them, from the importance curve);
* Mr.HiSum: one ``mr_hisum.h5`` for all splits (gtscore = importance per second, 2-3 s
  change-point shots, the official knapsack summary at 15 %, zero features) with the split json,
  metadata csv and titles tsv of the real layout;
* the benchmark items (charades, tvsum, youcook2, magqa, qvh, hisum), made by the benchmark modules'
  converters (``data/benchmarks/<name>.py``, as ``datasets/convert.py``) from the files above
  (default templates, the dataset seed); the raw files are written with those modules' format helpers.

Determinism: every random draw comes from ``numpy`` Generators seeded by (video seed, purpose);
the global RNGs are never used. Videos are H.264 (libx264, one thread, bit-exact container flags;
MPEG-4 part 2 when libx264 is absent), so the same seed gives the same bytes on the same install.
Video seeds come from ``SeedSequence((seed, split, index))``: splits are disjoint.

    python -m data.synthetic --out DIR --seed 0 [--n_train 120 --n_val 20 --n_test 20
        --duration 20:40 --fps 8 --size 128 --n_annotators 20 --workers 2]

Layout of DIR (see instructions/synthetic.md)::

    manifest.json  HIHD_metadata.csv  mixture_train.json  videos/<vid>.mp4
    mr_hisum.h5  mr_hisum_split.json  mr_hisum_metadata.csv  mr_hisum_titles.tsv
    <split>/ground_truth.json  ydata-tvsum50-anno.tsv  ydata-tvsum50-info.tsv  tvsum_anno.json
            charades_sta_<split>.txt  Charades_v1_<split>.csv  grounding.json  yc2_<split>.json
            shot2story_dvc.json  magqa_train.json  magqa_test.json  highlight_<split>_release.jsonl
            items/<benchmark>.jsonl

Modules: ``scene`` (configuration, scenes, ground truth), ``render`` (frames and bit-exact
encoding), ``annotations`` (every file format), ``dataset`` (the whole set and the command line).
"""
from utils.io import sha256_file  # noqa: F401  (tests check files with it)

from data.synthetic.scene import (  # noqa: F401
    GENERATOR, FORMAT_VERSION, KINDS, COLOURS, MOTIONS, CLUTTER_GREYS, PALETTE, MOTION_VERB, MOTION_CATEGORY,
    DISTRACTOR_TYPES, SPLITS, SPLIT_CODE, PURPOSE, DISTRACTOR_LEVEL, EDGE_S, TVSUM_CLIP_S, TIME_GRID, RESPONSE_GRID,
    MIN_DURATION, QVH_CLIP_S, QVH_ANNOTATORS, HISUM_FEATURE_DIM, HISUM_BUDGET, HISUM_SHOT_S, QVH_VIDEO_TEMPLATE,
    HISUM_FILES, MARKER_U, MARKER_SHADE, SQUARE_HALF, TRIANGLE_R, EXTENT, SynthConfig, _rng, video_seed, video_id,
    _grid, Shape, Event, Clutter, Scene, sample_event_spans, choose_match_slots, sample_distractor, sample_motion,
    event_pose, sample_background, sample_scene, smooth_edge, importance_at, frame_times, importance_per_second,
    annotator_clip_scores, annotator_frame_scores, replay_scores, response_time,
)
from data.synthetic.render import (  # noqa: F401
    resolve_codec, Renderer, rgb_to_yuv420p, encode_video, SyntheticVideo, render_scene, generate_video,
)
from data.synthetic.annotations import (  # noqa: F401
    tvsum_files, charades_files, grounding_records, activitynet_captions, dvc_records, MagqaExample, magqa_example,
    magqa_files, HIHD_COLUMNS, hihd_rows, qvh_clip_saliency, qvh_vid, qvh_records, hisum_change_points,
    hisum_gt_summary, HISUM_COLUMNS, hisum_metadata_row, write_hisum_files, benchmark_items, write_split_annotations,
    mixture_config,
)
from data.synthetic.dataset import (  # noqa: F401
    is_default_set, generate_dataset, parse_size, parse_duration, parse_fraction_range, build_parser, main,
)

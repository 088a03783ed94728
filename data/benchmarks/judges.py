"""Pluggable LLM judges that rate a predicted answer against the gold one on a 1-5 scale (MAGQA).

Every judge sees the same two messages: the rubric (``RUBRIC``, system) and
``"Question: ...\\nGround Truth Answer: ...\\nPredicted Answer: ..."`` (user), and its reply is
read by ``parse_score`` (its first character if that is a digit 1-5, else its first stand-alone
digit 1-5 once the rubric's scale quoted back, "(1-5)", is set aside; a reply without one scores 1, the reference's fallback, and is counted in
``stats["unparsable"]``).

- ``OpenAIChatJudge``: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, Groq, vLLM,
  llama.cpp server ...) over httpx with tenacity's retries; configured from
  ``AHA_JUDGE_BASE_URL`` / ``AHA_JUDGE_MODEL`` / ``AHA_JUDGE_API_KEY``. Timeouts, bounded retries
  with exponential back-off on network errors, 408/409/429, 5xx and malformed replies; a failure
  is reported as a sanitised status line (``HTTP 503 Service Unavailable``), never the server's
  words; the API key is sent only in the Authorization header and never appears in
  ``describe()``, the cache, exceptions or log messages.
- ``HFCausalLMJudge``: a local transformers causal LM, chat template, greedy decoding.

Any judge can keep an on-disk cache (JSONL, one line per judgement, keyed by the SHA-256 of the
judge's identity and both messages), so a rerun, or a run resumed after an error, never asks twice.
The identity is what decides a reply besides the messages: the model id and, for the HTTP judge,
the endpoint (without credentials), temperature and max_tokens; for the local one, max_new_tokens.
"""
from __future__ import annotations

import abc

import hashlib
import json
import logging
import math
import os
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import tenacity

from utils.io import JsonlWriter, read_own_jsonl

log = logging.getLogger(__name__)

RUBRIC = (
    "You grade a video question-answering system. Compare the predicted answer with the ground "
    "truth answer to the question and rate how correct the prediction is:\n"
    "5 = fully correct: it agrees with the ground truth and covers all of its relevant content.\n"
    "4 = largely correct: small details are missing or slightly off.\n"
    "3 = partly correct: some content is right, but important points are missing or wrong.\n"
    "2 = mostly wrong: little is right, most is incorrect, irrelevant or contradicts the ground truth.\n"
    "1 = wrong: nothing is correct, or it does not answer the question.\n"
    "Reply with a single digit from 1 to 5 and nothing else."
)
SCORE_RANGE = (1, 5)
UNPARSABLE_SCORE = 1
ENV_BASE_URL, ENV_MODEL, ENV_API_KEY = "AHA_JUDGE_BASE_URL", "AHA_JUDGE_MODEL", "AHA_JUDGE_API_KEY"
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx

_SCORE_RE = re.compile(r"(?<!\d)([1-5])(?!\d)")
# the rubric's scale quoted back ("Score (1-5): 4", "on a 1 to 5 scale, 2"): not a score
_SCALE_RE = re.compile(r"(?<!\d)1\s*(?:-|\u2013|\u2014|to)\s*5(?!\d)", re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge could not produce a reply (after its retries)."""


def user_message(question: str, gold: str, pred: str) -> str:
    return f"Question: {question}\nGround Truth Answer: {gold}\nPredicted Answer: {pred}"


def parse_score(text: str | None) -> int | None:
    """The reply's first character if it is a digit 1-5 (as the reference's local judge), else its
    first stand-alone digit 1-5 ("Score: 4/5" -> 4; "Score: 10" -> None), the scale quoted back
    ("Score (1-5): 4" -> 4, not 1) skipped; None when there is none."""
    if not text:
        return None
    text = text.strip()
    if text[:1] in ("1", "2", "3", "4", "5"):
        return int(text[0])
    m = _SCORE_RE.search(_SCALE_RE.sub(" ", text))
    return int(m.group(1)) if m else None


def rubric_sha() -> str:
    return hashlib.sha256(RUBRIC.encode()).hexdigest()[:16]


class JudgeCache:
    """Append-only JSONL of judgements keyed by sha256(model, system, user); loaded on open."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._table: dict[str, dict] = {}
        if self.path.exists():
            for _, rec in read_own_jsonl(self.path, "judge cache", log=log):
                if "key" in rec and "score" in rec:
                    self._table[rec["key"]] = rec
        self._writer: JsonlWriter | None = None

    @staticmethod
    def key(model: str, system: str, user: str) -> str:
        return hashlib.sha256(json.dumps([model, system, user], ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        return self._table.get(key)

    def put(self, key: str, record: dict) -> None:
        rec = {"key": key, **record}
        self._table[key] = rec
        if self._writer is None:
            self._writer = JsonlWriter(self.path)
        self._writer.write(rec)

    def __len__(self) -> int:
        return len(self._table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Judge(abc.ABC):
    """Base class: caching, parsing and counting; subclasses implement ``_complete``."""

    kind = "judge"

    def __init__(self, model_id: str, cache_path: str | os.PathLike | None = None):
        self.model_id = model_id
        self.cache = JudgeCache(cache_path) if cache_path else None
        self.stats = {"requests": 0, "cache_hits": 0, "repeats": 0, "unparsable": 0}
        self._memo: dict[str, int] = {}  # this run's judgements (identical pairs are asked once)

    @abc.abstractmethod
    def _complete(self, system: str, user: str) -> str:
        """The judge's raw reply to one (system, user) prompt."""

    def cache_identity(self) -> str:
        """What besides the messages decides a reply (the cache key's model part): a judgement made
        with other settings is another judgement (a rerun with a larger ``max_tokens``, after
        unparsable replies, must ask again rather than read the old replies back)."""
        return self.model_id

    def score(self, question: str, gold: str, pred: str) -> int:
        user = user_message(question, gold, pred)
        key = JudgeCache.key(self.cache_identity(), RUBRIC, user)
        if key in self._memo:
            self.stats["repeats"] += 1
            return self._memo[key]
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats["cache_hits"] += 1
            self._memo[key] = int(hit["score"])
            return self._memo[key]
        self.stats["requests"] += 1
        reply = self._complete(RUBRIC, user)
        parsed = parse_score(reply)
        if parsed is None:
            self.stats["unparsable"] += 1
            log.warning("judge reply without a 1-5 digit (scored %d): %.80r", UNPARSABLE_SCORE, reply)
        score = UNPARSABLE_SCORE if parsed is None else parsed
        self._memo[key] = score
        if self.cache is not None:
            self.cache.put(key, {"model": self.model_id, "score": score, "parsed": parsed is not None,
                                 "reply": (reply or "")[:200]})
        return score

    def describe(self) -> dict[str, Any]:
        """What a result file records about the judge (never a secret)."""
        return {"kind": self.kind, "model": self.model_id, "rubric_sha256_16": rubric_sha(),
                "unparsable_reply_score": UNPARSABLE_SCORE,
                "cache": None if self.cache is None else str(self.cache.path)}

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Transient(Exception):
    """A failure worth retrying (network, timeout, 408/409/429, 5xx, a malformed reply)."""

    def __init__(self, status: str, retry_after: float | None = None):
        super().__init__(status)
        self.status, self.retry_after = status, retry_after


def status_line(code: int) -> str:
    """``HTTP 503 Service Unavailable``: the code and its standard phrase; nothing the server sent
    (its body or reason text may echo the request, API key included) ever reaches a message."""
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "non-standard status"
    return f"HTTP {code} {phrase}"


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: keep the exponential delay


class OpenAIChatJudge(Judge):
    """An OpenAI-compatible chat-completions endpoint (``{base_url}/chat/completions``) over httpx,
    with tenacity's retries: exponential back-off (``backoff`` * 2^attempt, at most ``max_backoff``,
    longer when the server sends Retry-After) on network errors, timeouts, 408/409/429, 5xx and
    malformed replies, at most ``max_retries`` retries; any other 4xx is final. Failures raise
    ``JudgeError`` with a sanitised status line only; the key travels in the Authorization header
    and is scrubbed from every message, log line and cached reply."""

    kind = "openai-chat"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 temperature: float = 0.0, max_tokens: int = 8,
                 cache_path: str | os.PathLike | None = None, transport=None):
        if not base_url or not model:
            raise ValueError("OpenAIChatJudge needs a base_url and a model")
        for name, v in (("timeout", timeout), ("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "timeout" and v == 0):
                raise ValueError(f"{name} must be a finite number {'> 0' if name == 'timeout' else '>= 0'}, got {v!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        super().__init__(model, cache_path)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self.timeout, self.max_retries = float(timeout), int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.temperature, self.max_tokens = float(temperature), int(max_tokens)
        self._transport = transport
        self._client = None

    @classmethod
    def from_env(cls, **kwargs) -> "OpenAIChatJudge":
        base_url, model = os.environ.get(ENV_BASE_URL), os.environ.get(ENV_MODEL)
        if not base_url or not model:
            raise ValueError(f"set {ENV_BASE_URL} and {ENV_MODEL} (and {ENV_API_KEY} if the endpoint needs one)")
        return cls(base_url, model, os.environ.get(ENV_API_KEY) or None, **kwargs)

    def __repr__(self) -> str:  # never print the key
        return f"OpenAIChatJudge(url={public_url(self.url)!r}, model={self.model_id!r})"

    def cache_identity(self) -> str:
        return json.dumps({"model": self.model_id, "url": public_url(self.url), "temperature": self.temperature,
                           "max_tokens": self.max_tokens}, sort_keys=True)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(url=public_url(self.url), temperature=self.temperature, max_tokens=self.max_tokens,
                 timeout_s=self.timeout, max_retries=self.max_retries, client=f"httpx {httpx.__version__}")
        return d

    def scrub(self, text: str) -> str:
        """``text`` with the API key (and the URL's credentials) taken out."""
        for secret in (self._api_key, *url_secrets(self.url)):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _http(self):
        if self._client is None:
            # httpx logs every response's status line at INFO and httpcore its headers at DEBUG, the
            # server's reason phrase and headers verbatim: a server echoing the request would put the
            # key on stderr of any command that logs at INFO
            for name in ("httpx", "httpcore"):
                logging.getLogger(name).setLevel(logging.WARNING)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers, transport=self._transport,
                                        follow_redirects=False)
        return self._client

    def _post(self, body: dict) -> str:
        try:
            r = self._http().post(self.url, json=body)
        except httpx.TimeoutException:
            raise _Transient(f"no reply within {self.timeout:g} s") from None
        except httpx.TransportError as e:
            raise _Transient(f"network error ({type(e).__name__})") from None
        if r.status_code in RETRY_STATUS or r.status_code >= 500:
            raise _Transient(status_line(r.status_code), _retry_after_seconds(r.headers.get("Retry-After")))
        if r.status_code >= 300:
            raise JudgeError(f"judge request rejected ({status_line(r.status_code)})")
        try:
            payload = r.json()
        except (ValueError, UnicodeDecodeError):
            raise _Transient(f"{status_line(r.status_code)} with a reply that is not JSON") from None
        return _reply_text(payload)

    def _wait(self, state) -> float:
        delay = self.backoff * (2 ** (state.attempt_number - 1))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        return min(delay, self.max_backoff)

    def _complete(self, system: str, user: str) -> str:
        body = {"model": self.model_id, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}

        def before_sleep(state) -> None:
            log.warning("judge request failed (%s); retry %d/%d in %.2f s", state.outcome.exception().status,
                        state.attempt_number, self.max_retries, state.next_action.sleep)

        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(self.max_retries + 1), wait=self._wait,
                                     retry=tenacity.retry_if_exception_type(_Transient), reraise=True,
                                     before_sleep=before_sleep)
        try:
            return self.scrub(retrying(self._post, body))
        except _Transient as e:
            raise JudgeError(f"judge request failed after {self.max_retries + 1} attempts ({e.status})") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        super().close()


def public_url(url: str) -> str:
    """The URL without user:password and query string (an Azure-style ?api-key= stays out of records)."""
    try:
        u = httpx.URL(url)
        return str(u.copy_with(username=None, password=None, query=None))
    except Exception:  # not a URL at all: say nothing of it
        return "<invalid url>"


def url_secrets(url: str) -> list[str]:
    try:
        u = httpx.URL(url)
    except Exception:
        return []
    return [x for x in (u.password, u.query.decode(errors="replace") if u.query else "") if x]


def _reply_text(payload: Any) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        # the body is not quoted: a server that echoes the request would put the key in the message
        raise _Transient("a reply without choices[0].message.content") from None
    return content if isinstance(content, str) else ""


class HFCausalLMJudge(Judge):
    """A local transformers causal LM: chat template (when the tokenizer has one), greedy decoding."""

    kind = "hf-causal-lm"

    def __init__(self, model, tokenizer, *, model_id: str | None = None, max_new_tokens: int = 8,
                 cache_path: str | os.PathLike | None = None):
        name = model_id or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        super().__init__(str(name), cache_path)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_new_tokens = int(max_new_tokens)

    @classmethod
    def from_pretrained(cls, path: str, *, device: str = "cpu", dtype: str = "auto", **kwargs) -> "HFCausalLMJudge":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        return cls(model, tokenizer, model_id=kwargs.pop("model_id", path), **kwargs)

    def cache_identity(self) -> str:
        return json.dumps({"model": self.model_id, "decoding": "greedy", "max_new_tokens": self.max_new_tokens},
                          sort_keys=True)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(decoding="greedy", max_new_tokens=self.max_new_tokens,
                 chat_template=bool(getattr(self.tokenizer, "chat_template", None)))
        return d

    def _complete(self, system: str, user: str) -> str:
        import torch

        tok = self.tokenizer
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        if getattr(tok, "chat_template", None):
            enc = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                          return_dict=True, return_tensors="pt")
        else:  # a base model without a template: a plain transcript ending where the reply starts
            enc = tok(f"{system}\n\n{user}\nScore:", return_tensors="pt")
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def make_judge(spec: Any = None, **options) -> Judge:
    """A judge from a spec: a Judge instance (returned as is), "openai" (from the environment),
    or "hf:<path>" / "hf" with ``model=<path>``. ``options``: ``cache`` (path) and the judge's
    keyword arguments (timeout, max_retries, backoff, max_new_tokens, device ...)."""
    if isinstance(spec, Judge):
        return spec
    cache = options.pop("cache", None)
    if spec in (None, "openai", "http"):
        return OpenAIChatJudge.from_env(cache_path=cache, **options)
    if isinstance(spec, str) and (spec == "hf" or spec.startswith("hf:")):
        path = spec[3:] if spec.startswith("hf:") else options.pop("model", None)
        if not path:
            raise ValueError("an 'hf' judge needs a model path ('hf:<path>' or model=<path>)")
        return HFCausalLMJudge.from_pretrained(path, cache_path=cache, **options)
    raise ValueError(f"unknown judge {spec!r}: use 'openai', 'hf:<path>' or a Judge instance")

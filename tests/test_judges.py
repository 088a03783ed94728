import json
import time
from pathlib import Path

import pytest

from data.benchmarks import judges as J

SECRET = "sk-test-not-a-real-key"


def _judge(judge_server, **kw):
    kw = {"timeout": 2.0, "max_retries": 2, "backoff": 0.01, **kw}
    return J.OpenAIChatJudge(judge_server.base_url, "judge-model", SECRET, **kw)


# ------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("reply, score", [
    ("4", 4), (" 5\n", 5), ("Score: 4/5", 4), ("I'd say 3.", 3), ("44", 4),
    ("Score: 10", None), ("0", None), ("", None), (None, None), ("excellent", None),
    # the rubric's scale quoted back is not the score (it read 1)
    ("Score (1-5): 4", 4), ("On a scale of 1 to 5: 3", 3), ("Rating (1\u20135): 2", 2), ("(1-5)", None),
    ("1", 1)])
def test_parse_score(reply, score):
    assert J.parse_score(reply) == score


def test_user_message_and_rubric():
    msg = J.user_message("Q?", "gold", "pred")
    assert msg == "Question: Q?\nGround Truth Answer: gold\nPredicted Answer: pred"
    for digit in "12345":
        assert f"{digit} =" in J.RUBRIC


# ---------------------------------------------------------------------------- HTTP judge


def test_http_judge_request_and_secret_handling(judge_server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    with _judge(judge_server, cache_path=cache) as judge:
        assert judge.score("What is shown?", "a red car", "a car") == 4
        described = json.dumps(judge.describe())
    req = judge_server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == f"Bearer {SECRET}"
    assert req["body"]["model"] == "judge-model" and req["body"]["temperature"] == 0.0
    assert [m["role"] for m in req["body"]["messages"]] == ["system", "user"]
    assert req["body"]["messages"][1]["content"].startswith("Question: What is shown?")
    assert SECRET not in described and SECRET not in cache.read_text() and SECRET not in repr(judge)


def test_http_judge_retries_after_server_error(judge_server):
    judge_server.plan.extend(["500", "ok:2"])
    judge = _judge(judge_server)
    assert judge.score("q", "g", "p") == 2
    assert len(judge_server.requests) == 2


def test_http_judge_retries_after_timeout(judge_server):
    judge_server.plan.extend(["sleep:1.5", "ok:3"])
    judge = _judge(judge_server, timeout=0.3)
    t0 = time.monotonic()
    assert judge.score("q", "g", "p") == 3
    assert len(judge_server.requests) == 2 and time.monotonic() - t0 < 1.4


def test_http_judge_retries_are_bounded(judge_server):
    judge_server.plan.extend(["503"] * 10)
    judge = _judge(judge_server, max_retries=2)
    with pytest.raises(J.JudgeError, match="3 attempts"):
        judge.score("q", "g", "p")
    assert len(judge_server.requests) == 3


def test_http_judge_does_not_retry_a_rejected_request(judge_server):
    judge_server.plan.append("401")
    with pytest.raises(J.JudgeError, match="401"):
        _judge(judge_server).score("q", "g", "p")
    assert len(judge_server.requests) == 1


def test_http_judge_unparsable_reply_scores_one(judge_server):
    judge_server.plan.append("ok:I cannot decide.")
    judge = _judge(judge_server)
    assert judge.score("q", "g", "p") == 1 and judge.stats["unparsable"] == 1


def test_cache_means_a_rerun_sends_no_request(judge_server, tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    judge_server.plan.extend(["ok:5", "ok:2"])
    triples = [("q", "g1", "p1"), ("q", "g2", "p2"), ("q", "g1", "p1")]
    with _judge(judge_server, cache_path=cache) as judge:
        first = [judge.score(*t) for t in triples]
    assert first == [5, 2, 5] and len(judge_server.requests) == 2  # the repeated pair is asked once
    assert len(cache.read_text().splitlines()) == 2
    with _judge(judge_server, cache_path=cache) as judge2:
        assert [judge2.score(*t) for t in triples] == first
        assert judge2.stats["requests"] == 0 and judge2.stats["cache_hits"] == 2
    assert len(judge_server.requests) == 2
    # another model is another cache key
    with J.OpenAIChatJudge(judge_server.base_url, "other-model", cache_path=cache, backoff=0.01) as judge3:
        judge3.score("q", "g1", "p1")
    assert len(judge_server.requests) == 3 and judge_server.requests[-1]["auth"] is None


def test_cache_key_holds_the_settings_that_decide_a_reply(judge_server, tmp_path):
    """The cache was keyed by the model id alone: a rerun with a larger max_tokens (after replies cut
    to nothing, scored 1 as unparsable), another temperature or another endpoint read the old
    replies back while the results recorded the new settings."""
    cache = tmp_path / "judge_cache.jsonl"
    judge_server.plan.extend(["ok:", "ok:4", "ok:3", "ok:2"])
    with _judge(judge_server, cache_path=cache, max_tokens=8) as judge:
        assert judge.score("q", "g", "p") == 1 and judge.stats["unparsable"] == 1
    with _judge(judge_server, cache_path=cache, max_tokens=256) as judge:
        assert judge.score("q", "g", "p") == 4 and judge.stats["cache_hits"] == 0
    with _judge(judge_server, cache_path=cache, max_tokens=256, temperature=0.7) as judge:
        assert judge.score("q", "g", "p") == 3
    with J.OpenAIChatJudge(judge_server.base_url + "/other", "judge-model", cache_path=cache, max_tokens=256) as judge:
        assert judge.score("q", "g", "p") == 2
    with _judge(judge_server, cache_path=cache, max_tokens=256) as judge:  # the same settings: a cache hit
        assert judge.score("q", "g", "p") == 4 and judge.stats["cache_hits"] == 1
    assert len(judge_server.requests) == 4


def test_from_env(monkeypatch, judge_server):
    monkeypatch.setenv(J.ENV_BASE_URL, judge_server.base_url)
    monkeypatch.setenv(J.ENV_MODEL, "m")
    monkeypatch.setenv(J.ENV_API_KEY, SECRET)
    judge = J.make_judge("openai", backoff=0.01)
    assert isinstance(judge, J.OpenAIChatJudge) and judge.score("q", "g", "p") == 4
    assert judge_server.requests[-1]["auth"] == f"Bearer {SECRET}"
    monkeypatch.delenv(J.ENV_MODEL)
    with pytest.raises(ValueError, match=J.ENV_MODEL):
        J.OpenAIChatJudge.from_env()
    with pytest.raises(ValueError, match="unknown judge"):
        J.make_judge("gpt")


# ----------------------------------------------------------------------------- HF judge

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny_lm(request):
    shared = request.getfixturevalue("shared_data")
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / "qwen2")
    tok.chat_template = CHATML
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg), tok


def test_hf_judge_random_model_returns_a_score(tiny_lm):
    model, tok = tiny_lm
    judge = J.HFCausalLMJudge(model, tok, model_id="tiny-random-qwen2", max_new_tokens=4)
    s = judge.score("What is shown?", "a red car", "a car")
    assert isinstance(s, int) and 1 <= s <= 5
    assert judge.describe()["chat_template"] is True and judge.stats["requests"] == 1


def test_hf_judge_parses_the_generated_digit(tiny_lm):
    import copy

    import torch

    model, tok = tiny_lm
    rigged = copy.deepcopy(model)
    four = tok.convert_tokens_to_ids("4")
    head = torch.nn.Linear(rigged.config.hidden_size, rigged.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[four] = 10.0  # greedy decoding can only say "4"
    rigged.lm_head = head
    assert J.HFCausalLMJudge(rigged, tok, max_new_tokens=2).score("q", "g", "p") == 4


def test_magqa_evaluation_through_http_judge_and_cache(monkeypatch, judge_server, tmp_path):
    from test.evaluate import evaluate_files

    gold = tmp_path / "magqa.json"
    gold.write_text(json.dumps([{"question_id": 7, "conversation": [{"role": "user", "content": "q?"}],
                                 "answer": [{"content": "g", "time": [0, 4]}]}]))
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "7", "responses": [{"time": 1, "content": "p"}]}) + "\n")
    monkeypatch.setenv(J.ENV_BASE_URL, judge_server.base_url)
    monkeypatch.setenv(J.ENV_MODEL, "m")
    monkeypatch.setenv(J.ENV_API_KEY, SECRET)
    opts = {"judge": "openai", "judge_cache": str(tmp_path / "cache.jsonl"), "judge_options": {"backoff": 0.01}}
    judge_server.plan.extend(["500", "ok:5"])
    r1 = evaluate_files("magqa", str(pred), str(gold), options=opts)
    r2 = evaluate_files("magqa", str(pred), str(gold), options=opts)
    assert r1["metrics"]["in_span_score"] == r2["metrics"]["in_span_score"] == 5.0
    assert len(judge_server.requests) == 2 and r2["record"]["judge_stats"]["cache_hits"] == 1
    assert r1["record"]["judge"]["model"] == "m" and SECRET not in json.dumps(r1)


# ------------------------------------------------------------ the error contract of the judge


@pytest.mark.parametrize("code", [401, 403, 500, 503])
def test_a_server_that_echoes_headers_never_puts_the_key_anywhere(judge_server, tmp_path, caplog, code):
    judge_server.plan.extend([f"echo:{code}"] * 3)
    cache = tmp_path / "cache.jsonl"
    with caplog.at_level("DEBUG"):
        with _judge(judge_server, cache_path=cache, max_retries=2) as judge:
            with pytest.raises(J.JudgeError) as e:
                judge.score("q", "g", "p")
    msg = str(e.value)
    # a sanitised status line: the code and its standard phrase, nothing the server said
    from http import HTTPStatus

    assert f"HTTP {code} {HTTPStatus(code).phrase}" in msg and "Authorization" not in msg
    assert len(judge_server.requests) == (1 if code < 500 else 3)  # 4xx is final, 5xx retried
    assert SECRET not in msg and SECRET not in caplog.text and SECRET not in repr(e.value.__cause__ or "")
    assert not cache.exists() or SECRET not in cache.read_text()


def test_an_echoed_key_in_a_successful_reply_is_scrubbed_before_the_cache(judge_server, tmp_path, caplog):
    judge_server.plan.append("echo:200")
    cache = tmp_path / "cache.jsonl"
    with caplog.at_level("DEBUG"):
        with _judge(judge_server, cache_path=cache) as judge:
            assert judge.score("q", "g", "p") == 4
    text = cache.read_text()
    assert "Authorization: Bearer [r" in text and SECRET not in text and SECRET not in caplog.text  # echoed, scrubbed


def test_unreachable_server_and_garbage_replies_are_retried_then_a_status_line(judge_server, tmp_path):
    judge_server.plan.extend(["garbage"] * 3)
    with pytest.raises(J.JudgeError, match="not JSON"):
        _judge(judge_server).score("q", "g", "p")
    assert len(judge_server.requests) == 3
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = J.OpenAIChatJudge(f"http://127.0.0.1:{port}/v1", "m", SECRET, timeout=1.0, max_retries=1, backoff=0.01)
    with pytest.raises(J.JudgeError, match=r"after 2 attempts \(network error \(ConnectError\)\)"):
        judge.score("q", "g", "p")


def test_retry_after_is_honoured_and_bounded(judge_server):
    judge = _judge(judge_server, backoff=0.01, max_backoff=0.05)
    judge_server.plan.extend(["429", "ok:3"])
    t0 = time.monotonic()
    assert judge.score("q", "g", "p") == 3
    assert time.monotonic() - t0 < 2.0


def test_describe_never_shows_url_credentials(judge_server):
    url = judge_server.base_url.replace("http://", "http://user:hunter2@") + "?api-key=k3y"
    judge = J.OpenAIChatJudge(url, "m", SECRET)
    d = json.dumps(judge.describe()) + repr(judge)
    assert "hunter2" not in d and "k3y" not in d and SECRET not in d


def test_magqa_judge_failures_are_recorded_per_item_and_the_run_resumes(monkeypatch, judge_server, tmp_path, capsys):
    from test import evaluate

    gold = tmp_path / "magqa.json"
    gold.write_text(json.dumps([{"question_id": i, "conversation": [{"role": "user", "content": f"q{i}?"}],
                                 "answer": [{"content": f"g{i}", "time": [0, 4]}]} for i in (1, 2, 3)]))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": str(i), "responses": [{"time": 1, "content": f"p{i}"}]}) + "\n"
                            for i in (1, 2, 3)))
    monkeypatch.setenv(J.ENV_BASE_URL, judge_server.base_url)
    monkeypatch.setenv(J.ENV_MODEL, "m")
    monkeypatch.setenv(J.ENV_API_KEY, SECRET)
    out = tmp_path / "res.json"
    args = ["--func", "magqa", "--pred_file", str(pred), "--gold_file", str(gold), "--output_file", str(out),
            "--opt", 'judge_options={"backoff": 0.01, "max_retries": 1}']
    # example 2 hits a rejecting server (echoing headers), the others are judged
    judge_server.plan.extend(["ok:5", "echo:401", "ok:3"])
    assert evaluate.main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and SECRET not in err and "judge failed on 1 of 3" in err
    rec = json.loads(out.read_text())
    assert rec["status"] == "incomplete" and rec["metrics"] is None
    assert list(rec["failed_items"]) == ["2"] and "HTTP 401 Unauthorized" in rec["failed_items"]["2"]
    assert sorted(rec["judged_items"]) == ["1", "3"] and SECRET not in out.read_text()
    # the same command resumes: only the failed pair is asked again
    n = len(judge_server.requests)
    assert evaluate.main(args) == 0
    assert len(judge_server.requests) == n + 1
    res = json.loads(out.read_text())
    assert res["metrics"]["in_span_score"] == pytest.approx((5 + 4 + 3) / 3)
    cache = Path(str(out) + ".judge_cache.jsonl")
    assert cache.is_file() and SECRET not in cache.read_text()

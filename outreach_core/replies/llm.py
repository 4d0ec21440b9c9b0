"""An optional LLM reply drafter behind an OpenAI-compatible chat-completions endpoint.

`LlmDrafter.draft` POSTs `{base_url}/v1/chat/completions` once and returns the choices' texts,
cleaned up for SMS. Every failure (timeout, connection error, non-2xx answer, a body that is not
the expected JSON, no usable choice) raises `LlmUnavailable`: the caller (drafts.draft_reply)
then falls back to its templates, so an LLM outage never stops replies. There is no retry for
the same reason: a template now beats a model answer later.

Works against OpenAI, any server speaking its API (vLLM, llama.cpp, Ollama's /v1) and the
deterministic loopback sandbox in outreach_core.sandbox.llm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final

import httpx

__all__ = [
    "CHAT_COMPLETIONS_PATH",
    "DEFAULT_TEMPERATURE",
    "MAX_REPLY_CHARS",
    "LlmDrafter",
    "LlmUnavailable",
    "sms_text",
]

CHAT_COMPLETIONS_PATH: Final = "/v1/chat/completions"
# Replies must stay under 320 characters (two long GSM-7 segments and a bit): longer texts
# cost more, read as spam and are split unpredictably by some carriers.
MAX_REPLY_CHARS: Final = 319
# Some variety between the n choices, not so much that the persona drifts.
DEFAULT_TEMPERATURE: Final = 0.7
# Enough of an error body to recognise the cause in a log line, never a whole HTML page.
_REASON_BODY_CHARS: Final = 200

# Models write typographic punctuation; any character outside GSM-7 makes the whole SMS
# UCS-2, which holds 70 characters a segment instead of 160.
_TYPOGRAPHY: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
)
_WRAPPING_QUOTES: Final = ('"', "'")
_SENTENCE_END: Final = re.compile(r"[.!?](?=\s|$)")


class LlmUnavailable(Exception):
    """The LLM gave no usable answer; `reason` says why (no secrets, fit for a log line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LlmDrafter:
    """Drafts SMS replies with a chat-completions model. Thread-safe (httpx.Client is).

    `base_url` is the server root (`https://api.openai.com`); a trailing `/v1`, as OpenAI's
    own clients spell it, is accepted too. `api_key` None sends no Authorization header (local
    servers). A `client` passed in is used as is (its own timeout and transport) and is not
    closed by `close()`; otherwise the drafter owns one with `timeout_s` for every phase.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not model.strip():
            raise ValueError("model must not be blank")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        root = base_url.strip().rstrip("/")
        self.url = root.removesuffix("/v1") + CHAT_COMPLETIONS_PATH
        self.model = model.strip()
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)

    def __repr__(self) -> str:
        # Never the key: drafters end up in logs and tracebacks.
        return f"LlmDrafter(url={self.url!r}, model={self.model!r}, timeout_s={self.timeout_s})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> LlmDrafter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def draft(self, *, system: str, prompt: str, n: int = 3) -> list[str]:
        """Up to `n` distinct SMS-sized texts, in the model's order. Raises LlmUnavailable."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt},
            ],
            "n": n,
            "temperature": DEFAULT_TEMPERATURE,
        }
        texts = _distinct(sms_text(c) for c in _contents(self._post(body)))
        if not texts:
            raise LlmUnavailable("the response held no usable text")
        return texts[:n]

    def _post(self, body: dict[str, Any]) -> Any:
        try:
            response = self._client.post(self.url, json=body, headers=self._headers)
        except httpx.TimeoutException:
            raise LlmUnavailable(f"no answer within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise LlmUnavailable(f"request failed: {type(exc).__name__}: {exc}") from None
        if not response.is_success:
            snippet = " ".join(response.text.split())[:_REASON_BODY_CHARS]
            raise LlmUnavailable(f"HTTP {response.status_code}: {snippet}")
        try:
            return response.json()
        except ValueError:
            raise LlmUnavailable("the response body is not JSON") from None


def _contents(payload: Any) -> list[str]:
    """The choices' message texts; LlmUnavailable when the payload is not a chat completion."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list):
        raise LlmUnavailable("the response has no 'choices' list")
    contents = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        # A null content (a tool call, a refusal) is skipped, not fatal: another choice may do.
        if isinstance(content, str):
            contents.append(content)
    return contents


def _distinct(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept = []
    for text in texts:
        key = " ".join(text.casefold().split())
        if text and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept


def sms_text(raw: str, limit: int = MAX_REPLY_CHARS) -> str:
    """`raw` as an SMS: GSM-friendly punctuation, whitespace collapsed, wrapping quotes
    removed, and at most `limit` characters, cut at a sentence end when one is in the second
    half of the allowance, else at a word."""
    text = " ".join(raw.translate(_TYPOGRAPHY).split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _WRAPPING_QUOTES:
        text = text[1:-1].strip()
    if len(text) <= limit:
        return text
    window = text[: limit + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= limit]
    if ends and ends[-1] > limit // 2:
        return window[: ends[-1]].strip()
    cut = window.rfind(" ")
    return (window[:cut] if cut > 0 else text[:limit]).rstrip(" ,;:-")

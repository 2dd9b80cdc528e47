"""The scoring prompt as token ids: the text before the image, the text after it, and
one token per level word (the word the model would say next).

A level word must be a single token: the score is a softmax over the logits of those
tokens at the last prompt position, and a word split into several tokens has no
single logit there. Such a word is refused with an error naming its pieces (choose
another word, or a spelling the tokenizer keeps whole).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vqa_rt.errors import ModelError

IMAGE_MARKER = "<image>"
_WORD_PIECES = re.compile(r"\w+|[^\w\s]|\n")


@dataclass(frozen=True)
class PromptTokens:
    prefix: tuple[int, ...]  # tokens before the image
    suffix: tuple[int, ...]  # tokens after the image, up to the last prompt position
    levels: tuple[int, ...]  # one token per level word


def split_prompt(prompt: str) -> tuple[str, str]:
    """The text before and after the one ``<image>`` marker."""
    if prompt.count(IMAGE_MARKER) != 1:
        raise ModelError(f"the prompt must contain {IMAGE_MARKER} exactly once, got {prompt!r}")
    before, after = prompt.split(IMAGE_MARKER)
    return before, after


def word_piece_tokens(prompt: str, levels: tuple[str, ...]) -> PromptTokens:
    """Tokens for models without a tokenizer (random init): each word, punctuation mark and
    line break is a token, numbered in order of first appearance, level words last."""
    before, after = split_prompt(prompt)
    vocabulary: dict[str, int] = {}

    def ids(text: str) -> tuple[int, ...]:
        return tuple(vocabulary.setdefault(piece, len(vocabulary)) for piece in _WORD_PIECES.findall(text))

    prefix, suffix = ids(before), ids(after)
    level_ids = []
    for word in levels:
        pieces = ids(word)
        if len(pieces) != 1:
            raise ModelError(f"level word {word!r} is not a single word")
        level_ids.append(pieces[0])
    return PromptTokens(prefix, suffix, tuple(level_ids))


def tokenizer_tokens(tokenizer: Any, prompt: str, levels: tuple[str, ...], image_token_id: int | None) -> PromptTokens:
    """Tokens from a Hugging Face tokenizer, special tokens such as BOS included.

    With ``image_token_id`` the whole prompt is tokenized and the image token found in it, as a
    LLaVA processor does. Without one (mPLUG-Owl2, whose vocabulary has no image token) the text
    before and after the marker is tokenized separately and the second part's BOS dropped, as
    mPLUG-Owl2's ``tokenizer_image_token`` does. A level word's token is the one token the word
    adds after the prompt: the prompt followed by a space and the word (Q-Align), or, when the
    prompt ends with whitespace, the word tokenized alone (Q-SiT appends the word's ids).
    """
    before, after = split_prompt(prompt)
    if image_token_id is None:
        prefix = list(tokenizer(before)["input_ids"])
        suffix = list(tokenizer(after)["input_ids"])
        if suffix[:1] == [tokenizer.bos_token_id] and tokenizer.bos_token_id is not None:
            suffix = suffix[1:]
    else:
        ids = list(tokenizer(prompt)["input_ids"])
        if ids.count(image_token_id) != 1:
            raise ModelError(f"the tokenizer does not turn {IMAGE_MARKER} into the image token {image_token_id} "
                             "exactly once (is it the checkpoint's tokenizer?)")
        cut = ids.index(image_token_id)
        prefix, suffix = ids[:cut], ids[cut + 1:]
    level_ids = [_level_token(tokenizer, after, word) for word in levels]
    if len(set(level_ids)) != len(level_ids):
        raise ModelError(f"level words {list(levels)} do not map to distinct tokens")
    return PromptTokens(tuple(prefix), tuple(suffix), tuple(level_ids))


def _level_token(tokenizer: Any, text: str, word: str) -> int:
    """The one token ``word`` adds after ``text`` (the prompt's end), as :func:`tokenizer_tokens` says."""
    if text[-1:].isspace():
        base, added = [], list(tokenizer(word, add_special_tokens=False)["input_ids"])
    else:
        base = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        extended = list(tokenizer(f"{text} {word}", add_special_tokens=False)["input_ids"])
        added = extended[len(base):] if extended[: len(base)] == base else extended
    if len(added) != 1:
        raise ModelError(f"level word {word!r} is not a single token of this tokenizer (after the prompt it "
                         f"becomes {tokenizer.convert_ids_to_tokens(added)}); choose level words the tokenizer "
                         "keeps whole")
    return added[0]

"""A small T5 tokenizer built in code, so the tiny model needs no download.

It is a real Unigram tokenizer in the T5 layout (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2),
wrapped in transformers' T5 tokenizer class so ``MochiPipeline`` saves and loads it like the
production one. Whole words score higher than single characters, so known words stay one token
and anything else falls back to characters rather than ``<unk>``.
"""

from __future__ import annotations

import string
from typing import Any

from t2v.model import _stack

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
WORD_BOUNDARY = "\u2581"  # SentencePiece's marker for "a word starts here"

# Words common in video prompts; enough to make tokenisation realistic, small enough to stay tiny.
PROMPT_WORDS_TEXT = """
a an the of in on at to with and or by from over under into through across near is are was
being very slowly quickly gently softly cat dog bird fish horse fox owl bear whale dolphin
butterfly robot person woman man child car train boat ship plane balloon bicycle city
street forest mountain river lake ocean sea beach desert field garden park sky cloud clouds
sun moon star stars rain snow fog storm wind fire light shadow water wave waves tree trees
flower flowers grass leaf leaves red orange yellow green blue purple pink white black gray
golden silver bright dark small large tiny huge old young beautiful calm cinematic
realistic detailed colorful walking running flying swimming jumping dancing floating
falling drifting glowing camera shot view close up wide aerial slow motion pan zoom
tracking sunset sunrise night day morning evening winter summer spring autumn video scene
style painting
"""


def tokenizer_vocabulary() -> list[tuple[str, float]]:
    """Unigram pieces with log-probability-like scores; the order fixes the token ids."""
    pieces: list[tuple[str, float]] = [(PAD_TOKEN, 0.0), (EOS_TOKEN, 0.0), (UNK_TOKEN, 0.0)]
    pieces.append((WORD_BOUNDARY, -3.0))
    seen = {piece for piece, _ in pieces}
    for rank, word in enumerate(dict.fromkeys(PROMPT_WORDS_TEXT.split())):
        piece = WORD_BOUNDARY + word
        if piece not in seen:
            seen.add(piece)
            # Slowly decreasing scores keep every whole word cheaper than spelling it out.
            pieces.append((piece, -4.0 - rank / 1000.0))
    characters = string.ascii_letters + string.digits + string.punctuation
    for character in characters:
        for piece in (character, WORD_BOUNDARY + character):
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, -12.0))
    return pieces


def build_tokenizer(model_max_length: int = 256) -> Any:
    """A T5 tokenizer (``T5TokenizerFast``) over :func:`tokenizer_vocabulary`."""
    return _stack.transformers().T5TokenizerFast(
        vocab=tokenizer_vocabulary(),
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        extra_ids=0,
        model_max_length=model_max_length,
    )

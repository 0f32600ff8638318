"""Words of titles, descriptions, tags and danmaku, Chinese included: jieba segments Chinese
runs into words; other scripts split on word boundaries. One tokenizer for the chapter
titles and the recommender's TF-IDF."""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Iterable

import jieba

__all__ = ["tokens", "top_terms"]

jieba.setLogLevel(logging.WARNING)
_WORD = re.compile(r"\w+", re.UNICODE)
_HAN = re.compile(r"[\u4e00-\u9fff]")
#: too common to say anything (English and Chinese function words, danmaku filler)
STOP = frozenset("""a an and are as at be but by for from has have i in is it its of on or so that the this to was
were will with you your we our they 从 到 的 了 是 我 你 他 她 它 们 在 和 就 都 也 很 吗 吧 啊 呢 这 那 有 不 一 个 上
""".split())


def tokens(text: str) -> list[str]:
    """Lower-cased words of ``text`` (jieba for Chinese), without stop words and 1-letter
    Latin words."""
    out = []
    for word in jieba.lcut(text.lower()) if _HAN.search(text) else _WORD.findall(text.lower()):
        word = word.strip()
        if not word or word in STOP or not _WORD.match(word):
            continue
        if len(word) == 1 and not _HAN.match(word):
            continue
        out.append(word)
    return out


def top_terms(texts: Iterable[str], limit: int = 3) -> list[str]:
    """The most frequent words of ``texts`` (a chapter's title from its danmaku)."""
    counts = Counter(word for text in texts for word in tokens(text))
    return [word for word, _ in counts.most_common(limit)]

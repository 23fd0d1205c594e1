"""VQA v2 answers: the official evaluation's normalisation and accuracy, the
answer vocabulary and the soft training targets.

Normalisation and accuracy follow the official evaluation script
(GT-Vision-Lab/VQA, ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``),
including its quirks, because published numbers are computed with it:

- punctuation: a mark is deleted if it touches a space somewhere in the
  answer (or the answer has a digit-comma-digit), otherwise replaced by a
  space; periods not followed by a digit are deleted (at most 32 of them: the
  script passes ``re.UNICODE`` as ``count``); its look-behind is a typo
  (``(?!<=\\d)``), so a period after a digit is deleted too;
- number words -> digits ("two" -> "2", "none" -> "0"), articles dropped,
  contractions restored ("dont" -> "don't");
- ground-truth answers (and the prediction) are normalised only when the ten
  humans did not all give the same string;
- accuracy = mean over the ten leave-one-annotator-out subsets of
  ``min(#matching answers among the other nine / 3, 1)``.
"""
import json
import os
import re
from collections import Counter

import numpy as np

from vlcore.formats.jsonl import iter_jsonl

_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
          "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official typo of a look-behind
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
# The official contraction table, as "spelling=restored" pairs (its one
# reversed entry, somebody'd -> somebodyd, included).
_CONTRACTIONS = dict(pair.split("=") for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd
itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't mightnt've=mightn't've
mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've neednt=needn't notve=not've
oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't
shed've=she'd've she'dve=she'd've she's=she's shouldve=should've shouldnt=shouldn't
shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've
somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd
someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's
somethingd=something'd somethingd've=something'd've something'dve=something'd've
somethingll=something'll thats=that's thered=there'd thered've=there'd've there'dve=there'd've
therere=there're theres=there's theyd=they'd theyd've=they'd've they'dve=they'd've theyll=they'll
theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've
werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've whens=when's whered=where'd
wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
you'dve=you'd've youll=you'll youre=you're youve=you've
""".split())


def _clean(text):
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text):
    out = text
    comma_digit = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        if (p + " " in text or " " + p in text) or comma_digit:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, 32)  # the script's count=re.UNICODE (== 32)


def process_digit_article(text):
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text):
    """The official normalisation of one answer string."""
    return process_digit_article(process_punctuation(_clean(text)))


def expand_answers(counts):
    """``{answer: n_humans}`` -> the list of raw human answers."""
    return [a for a, n in counts.items() for _ in range(int(n))]


def vqa_accuracy(prediction, human_answers):
    """Official VQA accuracy of one predicted answer against the raw human
    answers (a list, normally ten, or a ``{answer: count}`` dict)."""
    gts = expand_answers(human_answers) if isinstance(human_answers, dict) else list(human_answers)
    if not gts:
        raise ValueError("no human answers to score against")
    gts = [_clean(a) for a in gts]
    pred = _clean(prediction)
    if len(set(gts)) > 1:
        gts = [normalize_answer(a) for a in gts]
        pred = normalize_answer(pred)
    total = 0.0
    for j in range(len(gts)):
        matches = sum(1 for k, a in enumerate(gts) if k != j and a == pred)
        total += min(1.0, matches / 3.0)
    return total / len(gts)


def soft_scores(counts):
    """Training targets: ``{normalised answer: min(#humans / 3, 1)}``."""
    merged = Counter()
    for a, n in counts.items():
        merged[normalize_answer(a)] += int(n)
    return {a: min(1.0, n / 3.0) for a, n in merged.items() if a}


class AnswerVocab:
    """The answers a VQA classifier chooses from (one per output)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}
        if len(self.index) != len(self.answers):
            raise ValueError("answer vocabulary has repeated entries")

    def __len__(self):
        return len(self.answers)

    def targets(self, counts):
        """Soft-score vector ``[len(vocab)]`` of one question's answers
        (answers outside the vocabulary are dropped)."""
        t = np.zeros(len(self.answers), np.float32)
        for a, s in soft_scores(counts).items():
            i = self.index.get(a)
            if i is not None:
                t[i] = s
        return t

    @classmethod
    def build(cls, answer_counts, min_count=9, max_size=3129):
        """The most frequent normalised answers of the training questions:
        an answer counts once per question any human gave it; those counted
        in at least ``min_count`` questions are kept, the ``max_size`` most
        frequent (ties by string), as in the bottom-up-attention VQA
        vocabulary (threshold 9, ~3.1K answers on VQA v2 train+val)."""
        freq = Counter()
        for counts in answer_counts:
            for a in {normalize_answer(x) for x in counts}:
                if a:
                    freq[a] += 1
        ranked = sorted(((n, a) for a, n in freq.items() if n >= min_count), key=lambda x: (-x[0], x[1]))
        return cls([a for _, a in ranked[:max_size]])

    def save(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            for a in self.answers:
                f.write(json.dumps(a, ensure_ascii=False) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        """One JSON string per line (answers may contain any character)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no answer vocabulary file")
        answers = []
        for a, where in iter_jsonl(path):
            if not isinstance(a, str):
                raise ValueError(f"{where}: expected a JSON string, got {type(a).__name__}")
            answers.append(a)
        if not answers:
            raise ValueError(f"{path}: empty answer vocabulary")
        return cls(answers)

"""GSM8K (Cobbe et al. 2021) 8-shot chain-of-thought, as lm-evaluation-harness's ``gsm8k_cot``.

Prompt (``gsm8k/gsm8k-cot.yaml``, the 8 exemplars of Wei et al. 2022)::

    Q: <exemplar question>\\nA: <exemplar reasoning ... The answer is N.>\\n\\n   (x 8)
    Q: <test question>\\nA:

greedy generation until ``"Q:"``, ``"</s>"``, ``"<|im_end|>"`` or EOS (at most 256 tokens).
The reference is the text after ``####`` of the ``answer`` field. Two extractions, both from the
harness: ``strict-match`` takes the first ``"The answer is (-?[0-9.,]+)."``; ``flexible-extract``
takes the last number-like match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)``. Exact match then removes
``,`` / ``$`` / everything through ``"#### "`` / a final ``.`` from both sides and ignores case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from residq.eval.zeroshot.generation import greedy_generate
from residq.eval.zeroshot.locations import read_jsonl, user_task_file
from residq.eval.zeroshot.subset import take_subset

STOP_STRINGS = ("Q:", "</s>", "<|im_end|>")
MAX_NEW_TOKENS = 256
INVALID = "[invalid]"
STRICT_PATTERN = re.compile(r"The answer is (\-?[0-9\.\,]+).")
FLEXIBLE_PATTERN = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORED_PATTERNS = (",", "\\$", "(?s).*#### ", "\\.$")

FEWSHOT_EXEMPLARS: tuple[tuple[str, str], ...] = (
    (
        ("There are 15 trees in the grove. Grove workers will plant trees in the grove "
         "today. After they are done, there will be 21 trees. How many trees did the grove"
         " workers plant today?"),
        ("There are 15 trees originally. Then there were 21 trees after some more were "
         "planted. So there must have been 21 - 15 = 6. The answer is 6."),
    ),
    (
        ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are"
         " in the parking lot?"),
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
    ),
    (
        ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do"
         " they have left in total?"),
        ("Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 +"
         " 42 = 74. After eating 35, they had 74 - 35 = 39. The answer is 39."),
    ),
    (
        ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 "
         "lollipops. How many lollipops did Jason give to Denny?"),
        ("Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So "
         "he gave Denny 20 - 12 = 8. The answer is 8."),
    ),
    (
        ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. "
         "How many toys does he have now?"),
        ("Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that"
         " is 4 more toys. 5 + 4 = 9. The answer is 9."),
    ),
    (
        ("There were nine computers in the server room. Five more computers were installed"
         " each day, from monday to thursday. How many computers are now in the server "
         "room?"),
        ("There were originally 9 computers. For each of 4 days, 5 more computers were "
         "added. So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29."),
    ),
    (
        ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he "
         "lost 2 more. How many golf balls did he have at the end of wednesday?"),
        ("Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 ="
         " 35. After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33."),
    ),
    (
        ("Olivia has $23. She bought five bagels for $3 each. How much money does she have"
         " left?"),
        ("Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. "
         "So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8."),
    ),
)


def cot_prompt(question: str) -> str:
    """The 8-shot chain-of-thought prompt for one test question."""
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in FEWSHOT_EXEMPLARS)
    return f"{shots}Q: {question}\nA:"


def reference_answer(answer: str) -> str:
    """The final answer of a GSM8K ``answer`` field: the text after the last ``####``."""
    return answer.split("####")[-1].strip()


def extract_strict(generation: str) -> str:
    """Number in the first ``The answer is N.``, or ``"[invalid]"``."""
    matches = STRICT_PATTERN.findall(generation)
    return matches[0].strip() if matches else INVALID


def extract_flexible(generation: str) -> str:
    """Last number-like token of the generation, or ``"[invalid]"``."""
    matches = FLEXIBLE_PATTERN.findall(generation)
    if not matches:
        return INVALID
    groups = [group for group in matches[-1] if group]
    return groups[0].strip() if groups else INVALID


def normalize_answer(text: str) -> str:
    """Drop the ignored patterns (harness ``regexes_to_ignore``) and lowercase."""
    for pattern in IGNORED_PATTERNS:
        text = re.sub(pattern, "", text)
    return text.lower()


def is_exact_match(prediction: str, reference: str) -> bool:
    """Harness exact match after normalizing both sides."""
    return normalize_answer(prediction) == normalize_answer(reference)


def score_generations(generations: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """``{"exact_match": strict, "exact_match_flexible": flexible, "n"}`` over the rows."""
    if not generations:
        raise ValueError("no GSM8K generations to score")
    references = [reference_answer(answer) for answer in answers]
    pairs = list(zip(generations, references, strict=True))
    strict = [is_exact_match(extract_strict(g), r) for g, r in pairs]
    flexible = [is_exact_match(extract_flexible(g), r) for g, r in pairs]
    n = len(generations)
    return {"exact_match": sum(strict) / n, "exact_match_flexible": sum(flexible) / n, "n": n}


def evaluate_gsm8k(model, tokenizer, task_dir, limit: int | None = None, seed: int = 0,
                   batch_size: int = 16, device=None, progress: bool = True,
                   max_new_tokens: int = MAX_NEW_TOKENS) -> dict[str, float]:
    """GSM8K 8-shot CoT exact match on the (seeded-subset) rows of the user's JSONL
    (fields ``question`` and ``answer`` ending in ``#### N``)."""
    rows = take_subset(read_jsonl(user_task_file("gsm8k", task_dir)), limit, seed)
    prompts = [cot_prompt(row["question"]) for row in rows]
    generations = greedy_generate(model, tokenizer, prompts, STOP_STRINGS, max_new_tokens,
                                  batch_size, device, progress)
    return score_generations(generations, [row["answer"] for row in rows])

"""Text classification data for ``qadapters finetune``: WordNet glosses or a user's CSV / JSONL.

WordNet (Debian's ``wordnet-base``, files ``/usr/share/wordnet/data.{noun,verb,adj,adv}``): every
synset line reads ``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``. The second field is
the lexicographer file number (``05`` = ``noun.animal``); the text after ``|`` is the gloss, a
definition optionally followed by ``; "example sentences"``. We keep the definition only (examples
often contain the word itself) and label it by its lexicographer file name, so the task is "which
semantic field does this definition belong to" — real text, real labels, no hub download.

User data: a ``.csv`` file with a header holding ``text`` and ``label`` columns, or a ``.jsonl``
(``.ndjson``) file with one ``{"text": ..., "label": ...}`` object per line. Labels may be strings
or ints; they are mapped to ``0..C-1`` in sorted order.

Both become a :class:`TextSet`, split per class (seeded) into train / validation / test by
:func:`split`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
INSTALL_HINT = (
    "install Debian's WordNet data with `apt-get install wordnet-base` (files under "
    f"{WORDNET_DIR}), or pass your own data with --data PATH (.csv or .jsonl with "
    "'text' and 'label' columns)"
)

#: WordNet's lexicographer files by number (the ``lexnames`` table of the WordNet 3 database).
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip

#: default classes: six frequent, clearly different semantic fields of nouns
DEFAULT_CLASSES: tuple[str, ...] = (
    "noun.animal",
    "noun.artifact",
    "noun.food",
    "noun.location",
    "noun.person",
    "noun.plant",
)


@dataclass(frozen=True)
class TextSet:
    """Texts, integer labels ``0..C-1``, the label names and where the data came from."""

    texts: list[str]
    labels: np.ndarray
    names: list[str]
    source: str

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"expected as many labels as texts; found {len(self.labels)} and {len(self.texts)}"
            )


@dataclass(frozen=True)
class TextSplits:
    """Train / validation / test subsets of one :class:`TextSet` (same label names)."""

    train: TextSet
    val: TextSet
    test: TextSet


def concat(first: TextSet, second: TextSet) -> TextSet:
    """``first``'s texts, then ``second``'s, under the label names both share.

    Raises:
        ValueError: the two sets name their labels differently.
    """
    if first.names != second.names:
        raise ValueError(
            f"expected the same label names in both sets; found {first.names} and {second.names}"
        )
    return TextSet(
        first.texts + second.texts,
        np.concatenate([first.labels, second.labels]),
        first.names,
        f"{first.source} + {second.source}",
    )


# ------------------------------------------------------------------------------- WordNet
def parse_wordnet_line(line: str) -> tuple[int, str] | None:
    """``(lex_filenum, definition)`` of one ``data.*`` line, or None for header/blank lines.

    Header lines of the WordNet files start with two spaces (the license text).

    Raises:
        ValueError: a synset line without a ``|`` gloss or with a non-numeric second field.
    """
    if not line.strip() or line.startswith("  "):
        return None
    head, sep, gloss = line.partition("|")
    fields = head.split()
    if not sep or len(fields) < 2 or not fields[1].isdigit():
        raise ValueError(
            "expected a WordNet synset line 'offset lex_filenum ss_type ... | gloss'; "
            f"found {line[:80]!r}"
        )
    definition = gloss.split('; "')[0].strip().strip(";").strip()
    return int(fields[1]), definition


def read_wordnet(directory: str | Path = WORDNET_DIR) -> list[tuple[str, str]]:
    """All ``(definition, lexname)`` pairs of the ``data.*`` files in ``directory``.

    Raises:
        FileNotFoundError: when no ``data.*`` file is there (with the install hint).
        ValueError: on a malformed line (the file and line number are named).
    """
    directory = Path(directory)
    paths = [directory / f for f in WORDNET_FILES if (directory / f).is_file()]
    if not paths:
        raise FileNotFoundError(
            f"no WordNet data files ({', '.join(WORDNET_FILES)}) in {directory}; {INSTALL_HINT}"
        )
    out: list[tuple[str, str]] = []
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                try:
                    parsed = parse_wordnet_line(line)
                except ValueError as err:
                    raise ValueError(f"{path}:{number}: {err}") from None
                if parsed is None or not parsed[1]:
                    continue
                lex, text = parsed
                name = LEXNAMES[lex] if lex < len(LEXNAMES) else f"lex{lex:02d}"
                out.append((text, name))
    return out


def load_wordnet(
    classes: tuple[str, ...] | list[str] = DEFAULT_CLASSES,
    per_class: int = 300,
    seed: int = 0,
    directory: str | Path = WORDNET_DIR,
    exclude: Collection[str] = (),
) -> TextSet:
    """A balanced WordNet set: ``per_class`` seeded definitions of each lexname in ``classes``.

    Args:
        classes: lexicographer file names (``noun.animal``, ``verb.motion``, ...).
        per_class: definitions kept per class (every class must have that many).
        seed: seeds the sampling.
        directory: where the ``data.*`` files are.
        exclude: definitions never drawn (e.g. those of another set, to hold out a disjoint
            one).

    Raises:
        FileNotFoundError: WordNet is not installed there (the message says how to install it).
        ValueError: an unknown class name, or a class with fewer than ``per_class`` glosses.
    """
    pairs = read_wordnet(directory)
    counts = Counter(name for _, name in pairs)
    unknown = [c for c in classes if c not in counts]
    if unknown:
        raise ValueError(f"unknown WordNet class(es) {unknown}; classes found: {sorted(counts)}")
    if len(set(classes)) < 2:
        raise ValueError(f"expected at least 2 distinct classes; found {list(classes)}")
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    excluded = set(exclude)
    for label, name in enumerate(classes):
        pool = sorted({t for t, n in pairs if n == name} - excluded)  # dedupe identical ones
        if len(pool) < per_class:
            left = " left after the excluded ones" if excluded else ""
            raise ValueError(
                f"class {name!r}: expected at least {per_class} definitions{left}; "
                f"found {len(pool)}"
            )
        for i in rng.choice(len(pool), size=per_class, replace=False):
            texts.append(pool[int(i)])
            labels.append(label)
    source = f"WordNet glosses ({directory}), {per_class} per class"
    return TextSet(texts, np.asarray(labels, dtype=np.int64), list(classes), source)


# ------------------------------------------------------------------------------- user files
def _rows_csv(path: Path) -> list[tuple[int, dict[str, object]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = [c for c in ("text", "label") if c not in fields]
        if missing:
            raise ValueError(
                f"{path}: expected a CSV header with columns 'text' and 'label'; "
                f"found columns {fields}"
            )
        return [(n, dict(row)) for n, row in enumerate(reader, 2)]


def _rows_jsonl(path: Path) -> list[tuple[int, dict[str, object]]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: expected one JSON object per line; {err}") from None
            if not isinstance(obj, dict):
                raise ValueError(
                    f"{path}:{n}: expected a JSON object with 'text' and 'label'; "
                    f"found {type(obj).__name__}"
                )
            rows.append((n, obj))
    return rows


def load_file(path: str | Path) -> TextSet:
    """A user's ``.csv`` / ``.jsonl`` / ``.ndjson`` file with ``text`` and ``label`` fields.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown extension, missing field, empty text or label, fewer than 2 classes
            (the file and line are named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: expected a .csv or .jsonl file; found nothing")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _rows_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _rows_jsonl(path)
    else:
        raise ValueError(
            f"--data {path}: expected a .csv, .jsonl or .ndjson file; found {suffix!r}"
        )
    texts, raw = [], []
    for n, row in rows:
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{n}: expected a non-empty 'text' string; found {text!r}")
        if label is None or isinstance(label, bool) or str(label).strip() == "":
            raise ValueError(f"{path}:{n}: expected a 'label' (string or int); found {label!r}")
        if not isinstance(label, str | int):
            raise ValueError(
                f"{path}:{n}: expected a string or int 'label'; found {type(label).__name__}"
            )
        texts.append(text.strip())
        raw.append(str(label).strip())
    names = sorted(set(raw), key=lambda s: (not s.lstrip("-").isdigit(), _as_key(s)))
    if len(names) < 2:
        raise ValueError(
            f"{path}: expected at least 2 distinct labels; found {len(names)} in {len(raw)} rows"
        )
    index = {name: i for i, name in enumerate(names)}
    labels = np.asarray([index[r] for r in raw], dtype=np.int64)
    return TextSet(texts, labels, names, f"{path} ({len(texts)} rows)")


def _as_key(s: str) -> tuple[int, str]:
    return (int(s), "") if s.lstrip("-").isdigit() else (0, s)


# ------------------------------------------------------------------------------- splits
def split(data: TextSet, seed: int, fractions: tuple[float, float] = (0.15, 0.15)) -> TextSplits:
    """Seeded per-class split into train / validation / test with the given (val, test) fractions.

    Raises:
        ValueError: a class with fewer than 3 examples (one for each part).
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in range(len(data.names)):
        idx = rng.permutation(np.flatnonzero(data.labels == c))
        n_val, n_test = (max(1, round(f * len(idx))) for f in fractions)
        if len(idx) < n_val + n_test + 1:
            raise ValueError(
                f"label {data.names[c]!r}: expected at least 3 examples to split into "
                f"train/validation/test; found {len(idx)}"
            )
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
        parts[0].append(idx[n_val + n_test :])

    def subset(chunks: list[np.ndarray], what: str) -> TextSet:
        rows = rng.permutation(np.concatenate(chunks))
        texts = [data.texts[int(i)] for i in rows]
        return TextSet(texts, data.labels[rows], data.names, f"{data.source} [{what}]")

    return TextSplits(subset(parts[0], "train"), subset(parts[1], "val"), subset(parts[2], "test"))

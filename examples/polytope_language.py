"""The polytope lens on language models (issue 15): all-MiniLM-L6-v2 and a ReLU transformer trained here.

Two experiments, each in two parts (regions as units; boundary density along token-embedding paths):

A. **all-MiniLM-L6-v2** (GELU FFN; codes by the sign convention) over real sentences: SNLI
   (``../shared/data/snli/snli_1.0_dev.jsonl``) and, where Debian's ``wordnet-base`` is installed
   (``/usr/share/wordnet``), WordNet's example sentences as a second corpus: the FFN
   pre-activations of one block at every word (its first word piece) go through
   ``explain_text(..., units="code-clusters")``: code clusters, neurons, activation clusters,
   PCA/NMF/random directions and random subsets, explained with word, tag and NEIGHBORS
   concepts, compared at matched sizes. Density: the input embedding of one noun is moved from
   one word to another inside a sentence; the code changes of the first three FFN layers at
   that token are counted by sampling with bisection, and compared with the point where the
   token's last-layer state switches from being nearer the start word's to nearer the end word's.
B. **A small ReLU transformer trained here** (causal next-token prediction, 2 pre-LN blocks,
   ReLU FFN) on a synthetic language with exact token annotations (word, part of speech, noun
   class, number, role, position): the same unit families and comparison on exact codes, and
   density along subject-noun embedding paths singular -> plural (the predicted verb's number
   flips: a known semantic boundary) against same-number paths and a random-boundary control.

Run: ``python examples/polytope_language.py [--out runs/polytope-language] [--quick]
[--corpora snli,wordnet] [--skip-synthetic] [--skip-minilm]`` (about 15 minutes on 2 CPU cores;
``--quick`` for a smoke test). A corpus that is not there is skipped with a notice. Results go
to ``OUT/summary.json`` and CSV files; the verdicts are in ``docs/polytope.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from logiclens import CompositionalExplainer
from logiclens.core.concepts import ConceptSet
from logiclens.explain.active import ActiveUnitsExplainer
from logiclens.hooks import LayerRecorder
from logiclens.polytope.codes import PolytopeCodes
from logiclens.polytope.hooked import record_codes
from logiclens.polytope.position_units import RegionUnitSettings, position_families, size_matched_comparison
from logiclens.polytope.sampled import sampled_crossings

SNLI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "snli" / "snli_1.0_dev.jsonl"
WORDNET = Path("/usr/share/wordnet")  # Debian's wordnet-base
CORPORA = ("snli", "wordnet")


# ---------------------------------------------------------------------------------------------- corpora
def snli_sentences(n: int) -> list[str]:
    """The first ``n`` distinct SNLI dev sentences (premises and hypotheses, in file order)."""
    records = [json.loads(line) for line in SNLI.read_text().splitlines() if line.strip()]
    return list(dict.fromkeys(s for r in records for s in (r["premise"], r["hypothesis"])))[:n]


def wordnet_sentences(folder: Path, n: int, min_words: int = 5, seed: int = 0) -> list[str]:
    """``n`` WordNet example sentences (capitalised, at least ``min_words`` words), a seeded sample.

    The examples are the double-quoted parts of the glosses in ``data.{noun,verb,adj,adv}``
    (after ``|``); the licence header (lines starting with a space) is skipped.
    """
    found: dict[str, None] = {}
    for part in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{part}"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue
            for example in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                example = example.strip()
                if example[:1].isupper() and len(example.split()) >= min_words:
                    found[example] = None
    sentences = sorted(found)
    if len(sentences) <= n:
        return sentences
    chosen = np.random.default_rng(seed).choice(len(sentences), size=n, replace=False)
    return [sentences[i] for i in sorted(chosen)]


# ---------------------------------------------------------------------------------------------- helpers
def density_ratios(found: list, centers: np.ndarray, window: float = 0.1) -> np.ndarray:
    """Crossings within ``|t - center| <= window`` per unit length over each path's mean density."""
    out = []
    for crossing, center in zip(found, centers):
        if crossing.count == 0 or not np.isfinite(center):
            out.append(np.nan)
            continue
        lo, hi = max(0.0, center - window), min(1.0, center + window)
        inside = crossing.changes[(crossing.t >= lo) & (crossing.t <= hi)].sum()
        out.append(inside / (hi - lo) / crossing.count)
    return np.asarray(out, np.float64)


def summarize_comparison(table: pd.DataFrame) -> dict:
    """Per family: units and the unit-weighted mean of the bins' median IoU, held-out IoU and excess."""
    out = {}
    for family, part in table.groupby("family", sort=False):
        weights = part["units"].to_numpy(np.float64)
        row = {"units": int(weights.sum())}
        for column in ("median_iou", "median_heldout_iou", "excess"):
            if column in part:
                row[column] = float(np.average(part[column].fillna(0.0), weights=weights))
        out[family] = row
    return out


def matched_excess(regions: pd.DataFrame, neurons: pd.DataFrame, n_positions: int) -> dict:
    """Excess over chance of code clusters vs every other family, restricted to the code clusters' size bins."""
    table = size_matched_comparison(pd.concat([regions, neurons], ignore_index=True), n_positions)
    bins = set(table.loc[table.family == "code clusters", "size_bin"])
    shared = table[table.size_bin.isin(bins)]
    return {
        family: {
            "units": int(part.units.sum()),
            "excess": float(np.average(part.excess.fillna(0.0), weights=part.units)),
            "heldout_iou": float(np.average(part.median_heldout_iou.fillna(0.0), weights=part.units)),
        }
        for family, part in shared.groupby("family", sort=False)
    }


# ---------------------------------------------------------------------------------------------- A: MiniLM
def minilm_experiment(
    out: Path, sentences: list[str], n_paths: int, explainer: CompositionalExplainer, tag: str = "minilm"
) -> dict:
    """Part A on one corpus; files are prefixed ``tag``; the density part only when ``n_paths`` > 0."""
    from logiclens.text.pipeline import TextConceptSettings, TextSettings, explain_text
    from logiclens.text.transformer import load_transformer, record_word_activations

    started = time.perf_counter()
    data = out / f"{tag}_sentences.jsonl"
    data.write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences))
    concepts = TextConceptSettings(tokenizer="spacy", vocab_size=400, embeddings="minilm", n_neighbors=5)
    probe = concepts.probe("token")
    annotated = probe.annotate(sentences)
    model, tokenizer = load_transformer()
    layer = "encoder.layer.3.intermediate.dense"  # its output is the input of the block's GELU
    pre = record_word_activations(model, tokenizer, annotated, layer, pool="first")
    pre = np.nan_to_num(pre)
    np.save(out / f"{tag}_pre.npy", pre)
    settings = TextSettings(
        level="token", concepts=concepts, quantile=0.05, min_active=20, explainer=explainer, units="code-clusters",
        regions=RegionUnitSettings(n_clusters=24, min_cluster_size=20, n_components=8, max_fit=3000),
    )  # fmt: skip
    result = explain_text(data, activations=out / f"{tag}_pre.npy", layer=layer, settings=settings)
    result.regions.to_csv(out / f"{tag}_regions.csv", index=False)
    result.comparison.to_csv(out / f"{tag}_comparison.csv", index=False)
    neurons = result.explainer.explanations_.assign(family="neurons", layer=layer)
    neurons["size"] = (pre > result.thresholds[None, :]).sum(axis=0)
    near_zero = float((np.abs(pre) < 0.5).mean())  # where the sign code and the soft code Phi(z) disagree most
    summary = {
        "sentences": len(sentences),
        "tokens": len(pre),
        "layer": layer,
        "bits": int(pre.shape[1]),
        "distinct_codes": len(np.unique(PolytopeCodes.from_bits(pre > 0).keys())),
        "fraction_preactivations_within_0.5_of_0": near_zero,
        "comparison": summarize_comparison(result.comparison),
        "matched_to_code_cluster_sizes": matched_excess(result.regions, neurons, len(pre)),
        "top_code_clusters": result.regions[result.regions.family == "code clusters"]
        .sort_values("iou", ascending=False)
        .head(8)[["unit", "size", "formula", "iou", "heldout_iou", "significant"]]
        .to_dict(orient="records"),
    }
    summary["explain_seconds"] = time.perf_counter() - started
    if n_paths:
        summary["density"] = minilm_density(model, tokenizer, n_paths)
    summary["seconds"] = time.perf_counter() - started
    return summary


MINILM_FRAMES = ["A {} is sleeping on the grass .", "The {} runs across the street .", "Two men watch a {} ."]
MINILM_PAIRS = [("dog", "cat"), ("man", "woman"), ("boy", "girl"), ("car", "bicycle"), ("dog", "car"),
                ("woman", "cat"), ("horse", "bus"), ("child", "ball"), ("girl", "bird"), ("man", "tree")]  # fmt: skip


def minilm_density(model: nn.Module, tokenizer, n_paths: int) -> dict:
    """Sampled code changes of all FFN layers at one token while its input embedding moves between two words."""
    acts = [f"encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(3)]  # the forward stops after 3
    table = model.embeddings.word_embeddings.weight.detach()
    found, centers, controls = [], [], []
    rng = np.random.default_rng(0)
    jobs = [(frame, pair) for pair in MINILM_PAIRS for frame in MINILM_FRAMES][:n_paths]
    for frame, (a, b) in jobs:
        encoded = tokenizer(frame.format(a), return_tensors="pt")
        ids = encoded["input_ids"][0]
        id_a, id_b = tokenizer.convert_tokens_to_ids([a, b])
        position = int((ids == id_a).nonzero()[0, 0])
        base = table[ids].clone()

        def embeds(points: np.ndarray, base: torch.Tensor = base, position: int = position) -> torch.Tensor:
            batch = base.repeat(len(points), 1, 1)
            batch[:, position] = torch.as_tensor(points, dtype=batch.dtype)
            return batch

        def code(points: np.ndarray, embeds=embeds, position: int = position) -> np.ndarray:
            rows = []
            with LayerRecorder(model, acts, capture="input") as recorder:
                for start in range(0, len(points), 256):
                    chunk = embeds(points[start : start + 256])
                    mask = torch.ones(chunk.shape[:2], dtype=torch.long)
                    captured = recorder.run(inputs_embeds=chunk, attention_mask=mask)
                    rows.append(np.concatenate([captured[n][:, position].numpy() > 0 for n in acts], axis=1))
            return np.concatenate(rows)

        start, end = table[id_a].numpy(), table[id_b].numpy()
        crossing = sampled_crossings(code, start, end, n_samples=32, resolution=1e-3, max_evaluations=1500)
        grid = np.linspace(0, 1, 101)
        with torch.inference_mode():
            states = model(inputs_embeds=embeds(start[None] + grid[:, None] * (end - start)[None])).last_hidden_state
        states = torch.nn.functional.normalize(states[:, position], dim=1)
        nearer_b = (states @ states[-1]) > (states @ states[0])
        switch = grid[int(np.argmax(nearer_b.numpy()))] if nearer_b.any() else np.nan
        found.append(crossing)
        centers.append(switch)
        controls.append(rng.uniform(0.1, 0.9))
    ratios = density_ratios(found, np.asarray(centers))
    control = density_ratios(found, np.asarray(controls))
    return {
        "paths": len(found),
        "codes": "sign of the GELU input, FFN layers 0-2 x 1536 bits at the moved token",
        "mean_crossings": float(np.mean([f.count for f in found])),
        "mean_missed_estimate": float(np.mean([f.missed_estimate for f in found])),
        "max_resolution": float(max(f.resolution for f in found)),
        "mean_switch_t": float(np.nanmean(centers)),
        "ratio_at_switch_median": float(np.nanmedian(ratios)),
        "ratio_at_random_t_median": float(np.nanmedian(control)),
        "paths_with_higher_density_at_switch": float(np.nanmean(ratios > control)),
    }


# ---------------------------------------------------------------------------------------------- B: synthetic language
ANIMALS = [("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("horse", "horses")]
OBJECTS = [("ball", "balls"), ("box", "boxes"), ("cup", "cups"), ("car", "cars")]
ADJECTIVES = {"red": "colour", "blue": "colour", "green": "colour", "small": "size", "big": "size"}
INTRANSITIVE = [("runs", "run"), ("sleeps", "sleep"), ("jumps", "jump")]
TRANSITIVE = [("sees", "see"), ("likes", "like"), ("pushes", "push")]


class SyntheticLanguage:
    """``DET [ADJ] NOUN VERB [DET [ADJ] NOUN] .`` with subject-verb number agreement, exact annotations."""

    def __init__(self) -> None:
        words = ["<pad>", "<s>", ".", "the", "a", *ADJECTIVES]
        for pair in [*ANIMALS, *OBJECTS, *INTRANSITIVE, *TRANSITIVE]:
            words.extend(pair)
        self.words = words
        self.ids = {w: i for i, w in enumerate(words)}

    def sentence(self, rng: np.random.Generator) -> list[tuple[str, dict[str, str]]]:
        out: list[tuple[str, dict[str, str]]] = []

        def noun_phrase(role: str, pool: list[tuple[str, str]], kind: str) -> str:
            plural = rng.random() < 0.5
            number = "pl" if plural else "sg"
            det = "the" if plural or rng.random() < 0.5 else "a"
            out.append((det, {"tag": "DET", "role": role, "number": number}))
            if rng.random() < 0.5:
                adjective = str(rng.choice(list(ADJECTIVES)))
                out.append((adjective, {"tag": "ADJ", "role": role, "class": ADJECTIVES[adjective]}))
            noun = pool[rng.integers(len(pool))][int(plural)]
            out.append((noun, {"tag": "NOUN", "role": role, "number": number, "class": kind}))
            return number

        number = noun_phrase("subject", ANIMALS, "animal")
        transitive = rng.random() < 0.5
        verbs = TRANSITIVE if transitive else INTRANSITIVE
        verb = verbs[rng.integers(len(verbs))][0 if number == "sg" else 1]
        out.append((verb, {"tag": "VERB", "role": "verb", "number": number,
                           "class": "transitive" if transitive else "intransitive"}))  # fmt: skip
        if transitive:
            pool, kind = (ANIMALS, "animal") if rng.random() < 0.5 else (OBJECTS, "object")
            noun_phrase("object", pool, kind)
        out.append((".", {"tag": "PUNCT", "role": "end"}))
        return out


class Block(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))


class TinyLM(nn.Module):
    """A causal transformer with ReLU feed-forward layers (``blocks.i.ffn.1`` are the ReLUs)."""

    def __init__(
        self, vocab: int, width: int = 48, heads: int = 4, hidden: int = 96, layers: int = 2, length: int = 12
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(length, width) * 0.02)
        self.blocks = nn.ModuleList([Block(width, heads, hidden) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(ids) if embeds is None else embeds
        t = x.shape[1]
        x = x + self.position[:t]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x))


def synthetic_experiment(out: Path, n_train: int, n_probe: int, steps: int, n_paths: int,
                         explainer: CompositionalExplainer) -> dict:  # fmt: skip
    started = time.perf_counter()
    language = SyntheticLanguage()
    rng = np.random.default_rng(0)
    length = 12

    def encode(sentences: list) -> torch.Tensor:
        ids = torch.zeros(len(sentences), length, dtype=torch.long)
        for i, sentence in enumerate(sentences):
            tokens = [language.ids["<s>"]] + [language.ids[w] for w, _ in sentence]
            ids[i, : len(tokens)] = torch.tensor(tokens)
        return ids

    train = encode([language.sentence(rng) for _ in range(n_train)])
    torch.manual_seed(0)
    model = TinyLM(len(language.words), length=length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    for _ in range(steps):
        batch = train[torch.randint(len(train), (128,))]
        loss = loss_fn(model(batch[:, :-1]).reshape(-1, len(language.words)), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    torch.save(model.state_dict(), out / "tiny_lm.pt")
    probe_sentences = [language.sentence(rng) for _ in range(n_probe)]
    ids = encode(probe_sentences)
    lengths = np.array([len(s) + 1 for s in probe_sentences])
    with torch.inference_mode():  # agreement accuracy: the verb's number after the subject noun
        logits = model(ids[:, :-1])
    agree = []
    for i, sentence in enumerate(probe_sentences):
        k = next(j for j, (_, a) in enumerate(sentence) if a["tag"] == "VERB")
        predicted = language.words[int(logits[i, k].argmax())]  # position k predicts token k+1 = sentence[k]
        agree.append(predicted == sentence[k][0] or predicted in {v[0 if sentence[k][1]["number"] == "sg" else 1]
                                                                   for v in INTRANSITIVE + TRANSITIVE})  # fmt: skip
    # concepts per token (the <s> token is skipped: codes from position 1 on)
    rows, names = [], {}

    def concept(name: str) -> int:
        return names.setdefault(name, len(names))

    for sentence in probe_sentences:
        for position, (word, annotation) in enumerate(sentence):
            ids_here = {concept(f"word:{word}"), concept(f"pos:{position + 1}")}
            ids_here |= {concept(f"{key}:{value}") for key, value in annotation.items()}
            if position:
                ids_here.add(concept(f"after:{sentence[position - 1][1]['tag']}"))
            rows.append(ids_here)
    categories = [name.split(":")[0] for name in names]
    import scipy.sparse as sp

    matrix = sp.lil_array((len(rows), len(names)), dtype=bool)
    for i, r in enumerate(rows):
        matrix[i, sorted(r)] = True
    concepts = ConceptSet.from_sparse(matrix.T.tocsr(), list(names), categories)
    # one token per example, sentences kept on one side of the held-out split (groups): the null
    # permutes tokens, since sentences differ in length
    sentence_of = np.repeat(np.arange(len(probe_sentences)), lengths - 1)
    examples, groups = np.arange(len(sentence_of)), [int(s) for s in sentence_of]
    summary: dict = {
        "train_sentences": n_train, "steps": steps, "final_loss": float(loss.detach()), "probe_sentences": n_probe,
        "tokens": len(rows), "agreement_accuracy": float(np.mean(agree)), "layers": {},
    }  # fmt: skip
    for block in range(len(model.blocks)):
        layer = f"blocks.{block}.ffn.0"
        codes, pre = record_codes(model, layer, [ids[:, :-1]], lengths=lengths, skip_tokens=1, keep_preactivations=True)
        assert len(codes.codes) == len(rows)
        post = np.maximum(pre, 0.0)
        families, info = position_families(
            codes.codes, post, RegionUnitSettings(n_clusters=24, min_cluster_size=20, n_components=8, max_fit=3000),
            layer,
        )  # fmt: skip
        masks = np.concatenate([f.masks for f in families])
        fitted = ActiveUnitsExplainer(explainer, 1).fit(masks, concepts, None, examples, groups)
        regions = fitted.explanations_.copy()
        regions["unit"] = [n for f in families for n in f.unit_names]
        regions.insert(0, "family", [f.name for f in families for _ in f.unit_names])
        regions["size"] = masks.sum(axis=1)
        neuron_masks = (pre > 0).T
        neuron_fit = ActiveUnitsExplainer(explainer, 20).fit(neuron_masks, concepts, None, examples, groups)
        neurons = neuron_fit.explanations_.assign(family="neurons", size=neuron_masks.sum(axis=1))
        table = size_matched_comparison(pd.concat([regions, neurons], ignore_index=True), len(rows))
        regions.to_csv(out / f"synthetic_regions_block{block}.csv", index=False)
        table.to_csv(out / f"synthetic_comparison_block{block}.csv", index=False)
        summary["layers"][layer] = {
            "nonlinearity": codes.nonlinearity,
            "bits": codes.codes.n_bits,
            "distinct_codes": len(np.unique(codes.codes.keys())),
            "clustering": info,
            "comparison": summarize_comparison(table),
            "matched_to_code_cluster_sizes": matched_excess(regions, neurons, len(rows)),
            "top_code_clusters": regions[regions.family == "code clusters"].sort_values("iou", ascending=False)
            .head(8)[["unit", "size", "formula", "iou", "heldout_iou", "significant"]].to_dict(orient="records"),
        }  # fmt: skip
    summary["explain_seconds"] = time.perf_counter() - started
    summary["density"] = synthetic_density(model, language, n_paths, length)
    summary["seconds"] = time.perf_counter() - started
    return summary


def synthetic_density(model: TinyLM, language: SyntheticLanguage, n_paths: int, length: int) -> dict:
    """Subject-noun embedding paths: singular -> plural (the verb number flips) and singular -> singular."""
    rng = np.random.default_rng(1)
    relus = [f"blocks.{i}.ffn.1" for i in range(len(model.blocks))]
    singular = [language.ids[v[0]] for v in INTRANSITIVE + TRANSITIVE]
    plural = [language.ids[v[1]] for v in INTRANSITIVE + TRANSITIVE]
    table = model.embed.weight.detach()
    results = {"number": [], "same": []}
    for kind in results:
        for _ in range(n_paths):
            a = ANIMALS[rng.integers(len(ANIMALS))]
            b = ANIMALS[rng.integers(len(ANIMALS))]
            start_word, end_word = (
                a[0],
                (b[1] if kind == "number" else b[0] if b != a else ANIMALS[(ANIMALS.index(a) + 1) % 4][0]),
            )
            ids = torch.tensor([[language.ids["<s>"], language.ids["the"], language.ids[start_word]]])
            base = table[ids[0]].clone()

            def embeds(points: np.ndarray, base: torch.Tensor = base) -> torch.Tensor:
                batch = base.repeat(len(points), 1, 1)
                batch[:, 2] = torch.as_tensor(points, dtype=batch.dtype)
                return batch

            def code(points: np.ndarray, embeds=embeds) -> np.ndarray:
                with LayerRecorder(model, relus, capture="input") as recorder:
                    captured = recorder.run(embeds=embeds(points))
                return np.concatenate([captured[n][:, 2].numpy() > 0 for n in relus], axis=1)

            start, end = table[language.ids[start_word]].numpy(), table[language.ids[end_word]].numpy()
            crossing = sampled_crossings(code, start, end, n_samples=64, resolution=1e-5, max_evaluations=4000)
            grid = np.linspace(0, 1, 401)
            with torch.inference_mode():
                logits = model(embeds=embeds(start[None] + grid[:, None] * (end - start)[None]))[:, 2]
            p = logits.softmax(-1)
            plural_share = (p[:, plural].sum(1) / (p[:, plural].sum(1) + p[:, singular].sum(1))).numpy()
            switch = grid[int(np.argmax(plural_share > 0.5))] if (plural_share > 0.5).any() else np.nan
            results[kind].append((crossing, switch, rng.uniform(0.1, 0.9)))
    summary = {}
    for kind, items in results.items():
        found = [c for c, _, _ in items]
        switch = np.array([s for _, s, _ in items])
        random_t = np.array([r for _, _, r in items])
        at_switch = density_ratios(found, switch)
        at_random = density_ratios(found, random_t)
        summary[kind] = {
            "paths": len(items),
            "paths_with_a_number_switch": int(np.isfinite(switch).sum()),
            "mean_crossings": float(np.mean([c.count for c in found])),
            "mean_missed_estimate": float(np.mean([c.missed_estimate for c in found])),
            "max_resolution": float(max(c.resolution for c in found)),
            "ratio_at_switch_median": float(np.nanmedian(at_switch)) if np.isfinite(at_switch).any() else None,
            "ratio_at_random_t_median": float(np.nanmedian(at_random)),
            "paths_with_higher_density_at_switch": float(np.nanmean(at_switch > at_random))
            if np.isfinite(at_switch).any() else None,
        }  # fmt: skip
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/polytope-language"))
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke test")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true", help="only the MiniLM part")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="MiniLM corpora, among snli,wordnet")
    args = parser.parse_args(argv)
    corpora = [c for c in args.corpora.split(",") if c]
    unknown = sorted(set(corpora) - set(CORPORA))
    if unknown:
        parser.error(f"--corpora: unknown {unknown}; choose from {list(CORPORA)}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    quick = args.quick
    explainer = CompositionalExplainer(max_length=3, beam_size=5, holdout=0.2, n_null=3 if quick else 10, verbose=0)
    started = time.perf_counter()
    summary: dict = {}
    if not args.skip_synthetic:
        summary["synthetic"] = synthetic_experiment(
            args.out, 2000 if quick else 20000, 200 if quick else 1000, 100 if quick else 1200, 3 if quick else 20,
            explainer,
        )  # fmt: skip
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"synthetic language: {summary['synthetic']['seconds']:.0f} s", flush=True)
    n_sentences, n_paths = (150, 3) if quick else (800, 10)
    for corpus in [] if args.skip_minilm else corpora:
        if corpus == "snli" and not SNLI.is_file():
            print(f"SNLI skipped: {SNLI} is not there", flush=True)
            continue
        if corpus == "wordnet" and not (WORDNET / "data.noun").is_file():
            print(f"WordNet skipped: {WORDNET} has no data.noun (Debian package wordnet-base)", flush=True)
            continue
        # the density paths do not depend on the corpus: run them once, with SNLI when it is there
        if corpus == "snli":
            sentences, tag, paths = snli_sentences(n_sentences), "minilm", n_paths
        else:
            sentences, tag = wordnet_sentences(WORDNET, n_sentences), "minilm_wordnet"
            paths = 0 if "minilm" in summary else n_paths
        summary[tag] = minilm_experiment(args.out, sentences, paths, explainer, tag)
        summary[tag]["corpus"] = corpus
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"all-MiniLM-L6-v2 on {corpus}: {summary[tag]['seconds']:.0f} s", flush=True)
    summary["seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"total {summary['seconds']:.0f} s; {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

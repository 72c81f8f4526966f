"""A QA model fine-tuned from MiniLM on generated data answers hand-written paragraphs (slow: trains it).

Nothing here shares a template with the generator: the paragraphs and questions were written for this test.
Without SPEECHTAO_QA_MODEL it runs the whole recipe (recipes/qa_finetune.yaml, ~15 min on 2 CPU cores with native bf16); set it to
a model folder (e.g. runs/qa_minilm/model) to check that model instead.
"""

import os

import pytest

from speechtao.nlp.qa_metrics import f1_score

PARAGRAPHS = [
    (
        "Marie Curie was a physicist and chemist who carried out pioneering research on radioactivity. She was "
        "born in Warsaw in 1867 and moved to Paris in 1891, where she studied at the University of Paris.",
        [
            ("Where was Marie Curie born?", "Warsaw"),
            ("When did Marie Curie move to Paris?", "1891"),
            ("Which university did Marie Curie attend?", "University of Paris"),
        ],
    ),
    (
        "The Rhine Valley Cooperative was founded in 1952 by Hans Becker, a carpenter from Basel. Today the "
        "cooperative employs two hundred people and is headquartered in Mainz.",
        [
            ("Who founded the Rhine Valley Cooperative?", "Hans Becker"),
            ("Where is the Rhine Valley Cooperative headquartered?", "Mainz"),
            ("What was the profession of Hans Becker?", "carpenter"),
        ],
    ),
    (
        "A sextant is a navigational instrument for measuring the angle between a celestial body and the horizon. "
        "A theodolite is a surveying instrument for measuring horizontal and vertical angles.",
        [("What is a theodolite?", "a surveying instrument for measuring horizontal and vertical angles")],
    ),
    # Written later, about relations the generator's training templates do not teach: dying, designing,
    # opening, connecting (test_nlp_qa_data.py checks that they stay untaught).
    (
        "Ada Lovelace was an English mathematician who wrote about the Analytical Engine, a mechanical computer "
        "designed by Charles Babbage. She was born in London in 1815 and died there in 1852.",
        [
            ("When did Ada Lovelace die?", "1852"),
            ("Who designed the Analytical Engine?", "Charles Babbage"),
            ("Where was Ada Lovelace born?", "London"),
        ],
    ),
    (
        "Construction of the Golden Gate Bridge began in 1933, and the bridge opened to traffic in 1937. Its chief "
        "engineer was Joseph Strauss. The bridge connects San Francisco to Marin County.",
        [
            ("When did the Golden Gate Bridge open?", "1937"),
            ("Who was the chief engineer of the Golden Gate Bridge?", "Joseph Strauss"),
            ("What does the bridge connect San Francisco to?", "Marin County"),
        ],
    ),
]


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory):
    from speechtao.nlp.qa import QAModel

    given = os.environ.get("SPEECHTAO_QA_MODEL")
    if given:
        return QAModel.load(given)
    from pathlib import Path

    from speechtao.corpora.qa_gen import make_qa_data
    from speechtao.corpora.textsrc import is_available
    from speechtao.nlp.qa import QAFinetuneSpec, finetune
    from speechtao.spec import load_spec

    if not is_available("wordnet") or not is_available("bible"):
        pytest.skip(
            "wordnet-base and bible-kjv are needed to generate the training data (apt-get install wordnet-base bible-kjv)"
        )
    root = tmp_path_factory.mktemp("qa_model")
    make_qa_data(root / "data", seed=0)  # the default sizes, as `speechtao qa make-data`
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "qa_finetune.yaml"
    spec = load_spec(
        QAFinetuneSpec,
        recipe,
        [
            f"data.train={root / 'data' / 'train.json'}",
            f"data.validation={root / 'data' / 'validation.json'}",
            f"trainer.out_dir={root / 'run'}",
        ],
    )
    finetune(spec)
    return QAModel.load(root / "run" / "model")


@pytest.mark.slow
@pytest.mark.parametrize("p", range(len(PARAGRAPHS)))
def test_hand_written_paragraphs(qa_model, p):
    context, questions = PARAGRAPHS[p]
    for question, gold in questions:
        answers = qa_model.answer(question, context, top_n=3)
        assert answers, f"no answer to {question!r}"
        text, score, start, end = answers[0]
        assert context[start:end] == text
        assert f1_score(text, gold) >= 0.8, (question, text, gold)

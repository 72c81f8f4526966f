"""Writes notebooks/*.ipynb (outputs empty) from the cell lists below: edit here, run `python scripts/make_notebooks.py`."""

import nbformat as nbf


def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        n.cells.append(nbf.v4.new_markdown_cell(src.strip()) if kind == "md" else nbf.v4.new_code_cell(src.strip()))
    return n


HELPER = '''
import os, subprocess, sys, json
from pathlib import Path

# Run from the repository root (where recipes/ and models/ are), whatever folder Jupyter started in.
ROOT = Path.cwd()
while not (ROOT / "recipes").is_dir() and ROOT != ROOT.parent:
    ROOT = ROOT.parent
os.chdir(ROOT)
WORK = Path(os.environ.get("SPEECHTAO_NOTEBOOK_WORK", "runs/notebooks"))  # everything this notebook writes
WORK.mkdir(parents=True, exist_ok=True)


def speechtao(*args):
    """Run one `speechtao` command, show its output, stop the notebook if it fails."""
    cmd = [sys.executable, "-m", "speechtao", *map(str, args)]
    print("$ speechtao", " ".join(map(str, args)))
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, SPEECHTAO_THREADS="1"))
    print(r.stdout[-4000:], r.stderr[-2000:], sep="")
    if r.returncode != 0:
        raise RuntimeError(f"speechtao {args[0]} {args[1] if len(args) > 1 else ''} exited {r.returncode}")
    return r.stdout
'''

asr = nb(
    [
        (
            "md",
            """
# Fine-tune speech recognition on your own data, then evaluate, prune, export and serve it

This notebook walks the TAO flow one command at a time with `speechtao`'s command line, on CPU, in a few minutes.
It uses the tiny real-speech fixture the tests use (seven recordings from Debian's `pocketsphinx-testdata`) and the
tiny starter model so it runs anywhere; **point `DATA` at your own folder** of manifests
(`train.jsonl`, `dev.jsonl`, `test.jsonl`: NeMo JSON lines with `audio_filepath`, `duration`, `text`; see
`manifests/README.md`) and pick a bigger starter (`models/quartznet_small_synth.pt`) and more steps for real work.
""",
        ),
        ("code", HELPER),
        (
            "code",
            """
DATA = Path("tests/fixtures/tiny_asr")      # <- your folder of train/dev/test manifests
STARTER = "models/quartznet_tiny_synth.pt"  # <- the pretrained model you adapt
STEPS = 20                                  # <- a few hundred for real data
""",
        ),
        (
            "md",
            "## 1. Check the data\n`data validate` reports every defect of a manifest (line, problem, fix) and exits non-zero when there is one.",
        ),
        (
            "code",
            """
for split in ("train", "dev", "test"):
    speechtao("data", "validate", DATA / f"{split}.jsonl")
speechtao("data", "stats", DATA / "train.jsonl")
""",
        ),
        ("md", "## 2. How good is the starter on your test split?"),
        (
            "code",
            'speechtao("asr", "evaluate", "--model", STARTER, "--manifest", DATA / "test.jsonl", "--out", WORK / "eval_starter")',
        ),
        (
            "md",
            "## 3. Fine-tune\nThe recipe is a typed YAML spec; `key.sub=value` overrides any field. The dev split picks `best.pt`.",
        ),
        (
            "code",
            """
speechtao(
    "asr", "finetune", "--spec", "recipes/asr_domain_finetune.yaml",
    f"init_from={STARTER}", f"data.train=[{DATA / 'train.jsonl'}]", f"data.validation=[{DATA / 'dev.jsonl'}]",
    f"trainer.out_dir={WORK / 'finetune'}", f"trainer.max_steps={STEPS}", "trainer.val_every=10",
    "trainer.log_every=5", "data.batch_size=4",
)
history = [json.loads(line) for line in (WORK / "finetune" / "history.jsonl").read_text().splitlines()]
print("training loss by step:", [(h["step"], round(h["loss"], 3)) for h in history if h["kind"] == "train"])
""",
        ),
        (
            "code",
            'speechtao("asr", "evaluate", "--model", WORK / "finetune" / "final.pt", "--manifest", DATA / "test.jsonl")',
        ),
        (
            "md",
            "## 4. Prune\nStructured pruning removes whole channels: the model really gets smaller (retrain it afterwards on real data).",
        ),
        (
            "code",
            """
speechtao("asr", "prune", "--model", WORK / "finetune" / "final.pt", "--ratio", "0.25", "--out", WORK / "pruned.pt")
speechtao("asr", "info", "--model", WORK / "pruned.pt")
""",
        ),
        (
            "md",
            "## 5. Export to ONNX INT8\nStatic INT8 (QDQ) calibrated on your training audio, with a TensorRT-format calibration cache beside it.",
        ),
        (
            "code",
            """
export = WORK / "export"
speechtao("asr", "export", "--model", WORK / "pruned.pt", "--format", "onnx-int8",
          "--calib", DATA / "train.jsonl", "--out", export / "model.int8.onnx")
speechtao("asr", "evaluate", "--model", export / "model.int8.onnx", "--manifest", DATA / "test.jsonl")
""",
        ),
        ("md", "## 6. Serve it over Riva's gRPC protocol and call it with Riva's own client"),
        (
            "code",
            """
import re, time
import riva.client

server = subprocess.Popen(
    [sys.executable, "-m", "speechtao", "serve", "--models", str(export), "--port", "0"],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
)
port = None
for line in server.stdout:  # "listening on 127.0.0.1:PORT ..."
    print(line, end="")
    m = re.search(r"listening on [^:]+:(\\d+)", line)
    if m:
        port = int(m.group(1))
        break
assert port, "the server did not start"
""",
        ),
        (
            "code",
            """
asr_service = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{port}"))
config = riva.client.RecognitionConfig(language_code="en-US", max_alternatives=1)
wav = DATA / json.loads((DATA / "test.jsonl").read_text().splitlines()[0])["audio_filepath"]
for attempt in range(60):  # models load after the port opens: UNAVAILABLE until then
    try:
        response = asr_service.offline_recognize(wav.read_bytes(), config)
        break
    except Exception as exc:
        time.sleep(1)
print("transcript:", response.results[0].alternatives[0].transcript if response.results else "")
""",
        ),
        (
            "code",
            """
server.terminate()
server.wait(timeout=30)
""",
        ),
    ]
)

nlp = nb(
    [
        (
            "md",
            """
# Punctuation and capitalization: make data, fine-tune, evaluate, export INT8, infer

The NLP side of the TAO flow on CPU in a few minutes: a pretrained MiniLM encoder gets punctuation and
capitalization heads, trained on text in NeMo's two-file format. Small settings here; the full recipe
(`make finetune-punct`) trains for about half an hour. **Point `DATA` at your own `text.txt` + `labels.txt`
folders** (train/ dev/ test/) to adapt it to your text.
""",
        ),
        ("code", HELPER),
        (
            "code",
            """
DATA = WORK / "punct_data"   # <- your folder with train/, dev/, test/ (text.txt + labels.txt each)
STEPS = 30                   # <- the recipe uses thousands
""",
        ),
        ("md", "## 1. Make a small dataset from text Debian ships (skip this with your own data)"),
        (
            "code",
            """
speechtao("punct", "make-data", "--out", DATA, "--lines-per-source", "100", "--question-lines", "20",
          "--extra-lines", "0", "--sources", "wordnet,fortunes")
""",
        ),
        ("md", "## 2. Fine-tune"),
        (
            "code",
            """
speechtao(
    "punct", "finetune", "--spec", "recipes/punct_finetune.yaml",
    f"data.train={DATA / 'train'}", f"data.validation={DATA / 'dev'}", "data.max_val_samples=50",
    f"trainer.out_dir={WORK / 'punct'}", f"trainer.max_steps={STEPS}", "trainer.val_every=30",
)
""",
        ),
        ("md", "## 3. Evaluate on the test split: per-mark F1 and capitalization F1"),
        ("code", 'speechtao("punct", "evaluate", "--model", WORK / "punct" / "model", "--data", DATA / "test")'),
        ("md", "## 4. Export to ONNX (FP32 + INT8) and use the INT8 file"),
        (
            "code",
            """
speechtao("punct", "export", "--model", WORK / "punct" / "model", "--out", WORK / "punct_export", "--format", "onnx-int8")
speechtao("punct", "infer", "--model", WORK / "punct_export", "hello how are you today i am fine thank you")
""",
        ),
    ]
)

nbf.write(asr, "notebooks/asr_finetune_your_data.ipynb")
nbf.write(nlp, "notebooks/nlp_punctuation.ipynb")

"""Language tasks over pretrained BERT-style encoders: punctuation and capitalization (:mod:`.punct`), named
entities (:mod:`.ner`), text classification (:mod:`.textcls`) and question answering (:mod:`.qa`, SQuAD files in
:mod:`.squad`). Shared parts: encoders and their layer structure (:mod:`.encoder`), task nets (:mod:`.heads`),
word-level tagging (:mod:`.tagging`), metrics (:mod:`.metrics`), the model folder (:mod:`.model_io`), the
Trainer glue (:mod:`.training`) and pruning (:mod:`.prune`); ONNX export is :mod:`speechtao.export.nlp`, the
corpus generators are in :mod:`speechtao.corpora`."""

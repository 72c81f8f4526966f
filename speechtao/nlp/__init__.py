"""Language tasks over pretrained BERT-style encoders: punctuation and capitalization (:mod:`.punct`), named
entities (:mod:`.ner`), text classification (:mod:`.textcls`) and question answering (:mod:`.qa`). Shared
machinery (model folder, Trainer glue, pruning, ONNX export) is in :mod:`.common`; encoders in :mod:`.encoder`."""

"""N-gram language models for CTC decoding: build (:mod:`.build`, :mod:`.arpa`), beam search with boosting
and N-best (:mod:`.decode`), alpha/beta tuning (:mod:`.tune`). CLI: ``speechtao lm build|tune`` and
``asr evaluate|infer --lm DIR``."""

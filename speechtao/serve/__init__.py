"""Serving: streaming and offline recognition over exported models, independent of the RPC layer.

- :mod:`.recognizer`: ``Recognizer`` / ``Stream`` (chunked CTC decoding with context, interim and final results,
  endpoints, batched steps) and ``StreamingOptions``;
- :mod:`.seq_recognizer`: ``SeqRecognizer`` for encoder-decoder models (Whisper): interims by re-decoding the
  growing utterance, finals at energy-VAD endpoints, 30 s and the end;
- :mod:`.backends`: the ``AcousticBackend`` and ``SequenceBackend`` protocols, ONNX Runtime, PyTorch and Whisper
  backends, ``load_backend``;
- :mod:`.decoding`: the decode step of final passes (greedy; the seam for LM decoding);
- :mod:`.stream_norm`: running feature statistics that normalize streaming chunk windows;
- :mod:`.endpointing`: Riva's EndpointingConfig semantics on blank frames;
- :mod:`.batching`: a queue that decodes concurrent streams together (max batch size, max wait);
- :mod:`.audio_input`: wire audio (WAV headers, PCM/FLAC/mu-law/A-law, channels) and streaming resampling;
- :mod:`.session`: one request's bytes to results; :mod:`.repository`: the served model folder;
- :mod:`.nlp`: which NLP library class serves which Riva NLP RPC.

The gRPC services live in the repository's ``server/`` folder, installed as the ``speechtao_server`` package.
"""

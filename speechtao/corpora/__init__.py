"""Everything that *makes* data: speech synthesis, the bundled domain, text sources, real recordings, NLP corpora."""

"""speechtao's tests. A regular package, so that `tests.unit...` imports resolve here even where a dependency
installs a top-level `tests` package of its own into site-packages (nemo_text_processing 1.2.0 does)."""

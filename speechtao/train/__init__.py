"""The one training loop shared by every task: :class:`~speechtao.train.loop.Trainer` over a task object
(:class:`~speechtao.train.loop.TrainTask`), AdamW and NovoGrad (``optim``), warmup + cosine schedules
(``schedule``), atomic checkpoints with exact resume (``checkpoint``, ``state``, ``rng``), the run's curves in
``history.jsonl`` (``history``: :func:`~speechtao.train.history.read_history`), the wall-clock budget
(``time_budget``), autocast (``precision``), weight averaging (``ema``) and DDP under torchrun (``ddp``)."""

"""The one training loop shared by every task: :class:`~speechtao.train.loop.Trainer` over a task object, AdamW and
NovoGrad (``optim``), warmup + cosine schedules (``schedule``), atomic checkpoints with exact resume
(``checkpoint``), and DDP under torchrun (``ddp``)."""

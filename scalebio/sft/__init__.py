"""From a selection to a fine-tuned model: the SFT set builder (``mixture``), sources drawn from p at every step
instead of one static set (``online``, ``sft.sampling: online | trajectory``), and fine-tuning (``finetune``)."""

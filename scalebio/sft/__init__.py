"""From a selection to a fine-tuned model: the SFT set builder (``mixture``) and fine-tuning (``finetune``)."""

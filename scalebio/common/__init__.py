"""What every stage uses: run-time helpers, typed configs, data and chat masking, models and losses,
the ``selection.json`` contract, the method registry, and SFT training."""

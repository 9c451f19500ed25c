"""``python -m scalebio reweight --config FILE [key=value ...]`` (see scalebio/cli.py)."""

from scalebio.cli import main

if __name__ == "__main__":
    main()

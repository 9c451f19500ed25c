"""``python -m baselines select ...``: an alias of ``python -m scalebio select`` (the one select command).

python -m baselines select --method less --data DIR --model DIR --out DIR --budget N --options '{...}'
python -m baselines list
"""

from __future__ import annotations

import sys

from scalebio.common.registry import main as select_main


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["list"]:
        return select_main(["--list"], prog="python -m baselines select")
    if argv[:1] != ["select"]:
        print("usage: python -m baselines select --method NAME ... | python -m baselines list", file=sys.stderr)
        raise SystemExit(2)
    return select_main(argv[1:], prog="python -m baselines select")


if __name__ == "__main__":
    main()

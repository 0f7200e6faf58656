"""LVIS AP (the lvis package; up to 1,000 detections per image) of a model: a thin script over `ovdet eval --metric lvis`.

    python tools/eval_lvis.py --model MODEL_DIR --data lvis.yaml --split minival --out runs/eval-lvis
"""

import sys

from ovdet.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["eval", "--metric", "lvis", *sys.argv[1:]]))

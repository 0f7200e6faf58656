"""COCO AP (pycocotools) of a model on a dataset split: a thin script over `ovdet eval --metric coco`.

    python tools/eval_coco.py --model MODEL_DIR --data coco.yaml --split val --out runs/eval-coco
"""

import sys

from ovdet.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["eval", "--metric", "coco", *sys.argv[1:]]))

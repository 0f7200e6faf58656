"""Check that every shipped YOLO-World / YOLOE config builds exactly the tensors of ultralytics' yaml at that scale.

    python tools/check_family_configs.py     # ~1 minute on 2 cores: 35 configs, up to the x sizes

For each config, ultralytics' model is built from the yaml it ships (random weights), converted with ovdet's
converter (which checks every layer type, wiring, activation, BatchNorm eps and tensor shape), and compared with
``ovdet.build(config)``: the same state-dict keys and shapes. The suite tests the n sizes (and 11m) this way as part
of the parity tests; this script covers every size.
"""

from __future__ import annotations

import logging
import os
import sys
import time

os.environ.setdefault("YOLO_OFFLINE", "1")


def main() -> int:
    import torch
    from ultralytics.nn.tasks import WorldModel, YOLOEModel, YOLOESegModel

    import ovdet
    from ovdet.io.convert import convert_ultralytics_model

    logging.getLogger("ovdet").setLevel(logging.ERROR)  # "no class embeddings": these models have random ones
    torch.set_num_threads(1)
    failures = 0
    for name in ovdet.list_models():
        if not name.startswith(("yoloworld-", "yoloe-")):
            continue
        scale = name.split("-")[1][-1]
        if name.startswith("yoloworld-"):
            cfg, cls = f"yolov8{scale}-world.yaml", WorldModel
        else:
            seg = name.endswith("-seg")
            cfg = f"yoloe-{name.split('-')[1][:-1]}{scale}{'-seg' if seg else ''}.yaml"
            cls = YOLOESegModel if seg else YOLOEModel
        t = time.time()
        converted = convert_ultralytics_model(cls(cfg, nc=80, verbose=False))
        built = ovdet.build(name, None)
        ours = {k: tuple(v.shape) for k, v in built.state_dict().items() if k != "class_embeddings"}
        theirs = {k: tuple(v.shape) for k, v in converted.state_dict().items() if k != "class_embeddings"}
        same = ours == theirs and built.config.head.embed_channels in (None, converted.config.head.embed_channels)
        failures += not same
        print(f"{name:16s} {cfg:22s} {'same tensors' if same else 'DIFFERENT'} ({time.time() - t:.1f} s)", flush=True)
    print("all shipped family configs match ultralytics" if not failures else f"{failures} configs differ")
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())

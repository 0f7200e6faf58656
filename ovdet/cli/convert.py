"""``ovdet convert ultralytics CKPT OUT_DIR --trust-pickle``: import a YOLO-World or YOLOE checkpoint as a saved model."""

from __future__ import annotations

import argparse
import sys

HELP = "convert another library's checkpoint into an ovdet model folder"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help=HELP, description=HELP)
    sources = p.add_subparsers(title="sources", dest="source", metavar="SOURCE", required=True)
    u = sources.add_parser(
        "ultralytics",
        help="a YOLO-World (v1 *-world.pt, v2 *-worldv2.pt) or YOLOE (yoloe-*.pt, -seg, -pf) checkpoint",
        description="Convert an ultralytics YOLO-World (v1, v2) or YOLOE (v8, 11, 26; detection, -seg, prompt-free -pf) "
        "checkpoint into a folder (model.safetensors + config.json) "
        "that `ovdet predict --model OUT_DIR` and ovdet.load(OUT_DIR) read without any pickle. The checkpoint is a "
        "pickle, which can run code when read: pass --trust-pickle only for files from a source you trust.",
    )
    u.add_argument("checkpoint", help="the ultralytics .pt file")
    u.add_argument("out_dir", help="the model folder to write (an existing one is replaced only if it is empty or a "
                   "model ovdet saved)")
    u.add_argument("--trust-pickle", action="store_true", help="allow unpickling the checkpoint (required)")
    u.add_argument("--overwrite", action="store_true", help="replace OUT_DIR even if it holds other files")
    u.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import ovdet

    from ..fileio import check_output_dir
    from ..model.serialization import is_model_folder

    # before the (slow, pickle-reading) conversion: a folder of the user's is never replaced
    check_output_dir(args.out_dir, what="model folder", owned=is_model_folder, overwrite=args.overwrite)
    model = ovdet.from_ultralytics(args.checkpoint, trust_pickle=args.trust_pickle)
    model.save(args.out_dir, overwrite=args.overwrite)
    encoder = f"text encoder {model.text_encoder.spec}" if model.text_encoder is not None else "prompt-free"
    print(f"converted {args.checkpoint} ({model.config.name}, {len(model.names)} classes, {encoder}) -> {args.out_dir}",
          file=sys.stderr)  # fmt: skip
    return 0

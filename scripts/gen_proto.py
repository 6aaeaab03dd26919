"""Regenerate proto/ankaios_pb2.py, .pyi and _pb2_grpc.py from proto/ankaios.proto.

Run from anywhere: ``python scripts/gen_proto.py`` writes the files,
``python scripts/gen_proto.py --check`` only compares a fresh generation with the
committed files and exits 1 (listing the files) when they differ.

The generation runs from the repository root with ``-I.`` so the generated
imports read ``from proto import ankaios_pb2``, exactly like the committed files.
Needs ``grpcio-tools`` (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = Path("proto") / "ankaios.proto"
GENERATED = ("ankaios_pb2.py", "ankaios_pb2.pyi", "ankaios_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    """Run protoc (from grpc_tools) into ``out_dir``; raise RuntimeError on failure."""
    from grpc_tools import protoc  # noqa: PLC0415 (late: only the dev extra ships it)

    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--pyi_out={out_dir}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {PROTO}")


def differences() -> list[str]:
    """Names of the committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh_dir = Path(tmp) / "proto"
        return [
            name
            for name in GENERATED
            if not (ROOT / "proto" / name).is_file()
            or (ROOT / "proto" / name).read_bytes() != (fresh_dir / name).read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = differences()
        for name in stale:
            print(f"proto/{name} differs from a fresh generation; run scripts/gen_proto.py", file=sys.stderr)
        return 1 if stale else 0
    generate(ROOT)
    print("regenerated " + ", ".join(f"proto/{name}" for name in GENERATED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
